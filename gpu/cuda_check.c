/*
 * cuda_check.c: the logging half of cuda_check.h: a failed CUDA runtime or cuBLAS call, named by
 * its statement, file and line, turned into HSAMEM_EBACKEND. It owns no state.
 */
#include "config.h"

#include "cuda_check.h"
#include "hsamem_defs.h"
#include "log.h"

int
cu_fail(cudaError_t e, const char *stmt, const char *file, int line)
{
	if (e == cudaSuccess)
		return 0;
	log_err("cuda: %s failed at %s:%d: %s (%s)", stmt, file, line, cudaGetErrorString(e),
	        cudaGetErrorName(e));
	return HSAMEM_EBACKEND;
}

int
blas_fail(cublasStatus_t e, const char *stmt, const char *file, int line)
{
	if (e == CUBLAS_STATUS_SUCCESS)
		return 0;
	log_err("cuda: %s failed at %s:%d: %s (%d)", stmt, file, line, cublasGetStatusString(e),
	        (int)e);
	return HSAMEM_EBACKEND;
}
