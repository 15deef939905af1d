/*
 * cuda_check.h: how the CUDA backend checks what the CUDA runtime and cuBLAS return. CU(stmt) and
 * BLAS(stmt) evaluate one call and give 0 when it succeeded; a failure is logged with the
 * statement, its file and line and the library's name for the error, and becomes
 * HSAMEM_EBACKEND, never an abort (STYLE.md): the backend then fails and the daemon serves on
 * the CPU. The test for success is inline, so a check costs a compare on the hot path; only the
 * logging is out of line. Internal to gpu/.
 */
#ifndef HSAMEM_CUDA_CHECK_H
#define HSAMEM_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

/* Logs a failed call and returns HSAMEM_EBACKEND; 0 for cudaSuccess (nothing logged). */
int cu_fail(cudaError_t e, const char *stmt, const char *file, int line);
/* The same for cuBLAS: 0 for CUBLAS_STATUS_SUCCESS. */
int blas_fail(cublasStatus_t e, const char *stmt, const char *file, int line);

static inline int
cu_check(cudaError_t e, const char *stmt, const char *file, int line)
{
	return e == cudaSuccess ? 0 : cu_fail(e, stmt, file, line);
}

static inline int
blas_check(cublasStatus_t e, const char *stmt, const char *file, int line)
{
	return e == CUBLAS_STATUS_SUCCESS ? 0 : blas_fail(e, stmt, file, line);
}

#define CU(stmt)   cu_check((stmt), #stmt, __FILE__, __LINE__)
#define BLAS(stmt) blas_check((stmt), #stmt, __FILE__, __LINE__)

#endif
