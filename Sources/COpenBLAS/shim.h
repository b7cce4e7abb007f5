// OpenBLAS's CBLAS interface plus its thread/kernel controls (Debian: libopenblas-dev, pthread build).
#include <cblas.h>

// Declared in OpenBLAS's cblas.h on most builds; repeated here so the module does not depend on it.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
