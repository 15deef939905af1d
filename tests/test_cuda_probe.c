/*
 * test_cuda_probe.c: the CUDA probe and gpu_cuda_alloc's answers. On a host without a GPU (or a
 * build without CUDA) the probe must report 0 devices with a reason and alloc must say -ENODEV:
 * that is the normal outcome and the test passes. With HSAMEM_REQUIRE_GPU=1 (the GPU test host) a
 * device must be found, and the test fails without one.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "hsamem.h"
#include "test.h"

int
main(void)
{
	const char *req = getenv("HSAMEM_REQUIRE_GPU");
	bool require = req != NULL && req[0] != '\0' && strcmp(req, "0") != 0;
	struct gpu_cuda_opts opts = {.device = 0};
	struct gpu_backend *b = NULL;
	char desc[256], tiny[4];
	int n;

	memset(desc, 0, sizeof(desc));
	n = gpu_cuda_probe(desc, sizeof(desc));
	printf("cuda probe: %d device(s): %s\n", n, desc);
	CHECK(n >= 0);
	CHECK(desc[0] != '\0');
	CHECK_RET(gpu_cuda_probe(NULL, 0), n);
	memset(tiny, 'x', sizeof(tiny));
	CHECK_RET(gpu_cuda_probe(tiny, sizeof(tiny)), n);
	CHECK(tiny[sizeof(tiny) - 1] == '\0');

	if (n == 0) {
#ifdef HAVE_CUDA
		CHECK(strstr(desc, "no CUDA device") != NULL || strstr(desc, "unusable") != NULL);
		CHECK_RET(gpu_cuda_alloc(NULL, &b), HSAMEM_EINVAL);
#else
		CHECK(strcmp(desc, "CUDA support not built") == 0);
#endif
		CHECK_RET(gpu_cuda_alloc(&opts, &b), -ENODEV);
		CHECK(b == NULL);
		if (require) {
			fprintf(stderr, "HSAMEM_REQUIRE_GPU is set, but there is no device: %s\n",
			        desc);
			return 1;
		}
		return test_done("test_cuda_probe");
	}

	CHECK(strstr(desc, "compute capability") != NULL);
	opts.device = n;
	CHECK_RET(gpu_cuda_alloc(&opts, &b), -ENODEV);
	opts.device = -1;
	CHECK_RET(gpu_cuda_alloc(&opts, &b), -ENODEV);
	CHECK(b == NULL);
	opts.device = 0;
	struct gpu_backend *cpu = NULL;
	CHECK_RET(gpu_cpu_alloc(1, &cpu), 0);
	opts.cpu = cpu;
	int err = gpu_cuda_alloc(&opts, &b);
#ifdef HAVE_CUDA_BACKEND
	CHECK_RET(err, 0);
	if (err == 0) {
		CHECK(strcmp(b->ops->name, "cuda") == 0);
		gpu_free(b);
	}
	/* the CPU fallback is the caller's: none given, no backend */
	opts.cpu = NULL;
	b = NULL;
	CHECK_RET(gpu_cuda_alloc(&opts, &b), HSAMEM_EINVAL);
	CHECK(b == NULL);
#else
	CHECK_RET(err, -ENODEV); /* the backend is not built yet */
#endif
	gpu_free(cpu);
	return test_done("test_cuda_probe");
}
