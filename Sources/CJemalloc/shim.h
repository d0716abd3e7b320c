// Debian's libjemalloc-dev: the malloc our executables run on (see ServerAllocator).
#include <jemalloc/jemalloc.h>
