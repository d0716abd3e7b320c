// Debian's libprotobuf-c-dev: the runtime that packs and unpacks the structs protoc-c generates.
#include <protobuf-c/protobuf-c.h>
