/* protoc-c output lands here (Scripts/gen-protos.sh). */
#include <stddef.h>
