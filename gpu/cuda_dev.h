/*
 * cuda_dev.h: the device helpers that the CUDA backend's kernel files (cuda_select.cu,
 * cuda_attend.cu) share: the element types' codes and the conversion of a 16-bit element to fp32.
 * Device code: included by .cu files only. Internal to gpu/.
 */
#ifndef HSAMEM_CUDA_DEV_H
#define HSAMEM_CUDA_DEV_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define HSA_F16_CODE  1 /* enum hsa_dtype, without including C headers into device code */
#define HSA_BF16_CODE 2

template <int DT>
__device__ static inline float
to_f(uint16_t u)
{
	if (DT == HSA_F16_CODE)
		return __half2float(__ushort_as_half(u));
	return __bfloat162float(__ushort_as_bfloat16(u));
}

#endif
