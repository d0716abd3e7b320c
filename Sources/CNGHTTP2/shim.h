// Debian's libnghttp2-dev: the HTTP/2 framing layer under RocketRPC.
#include <nghttp2/nghttp2.h>
