// libzmq's C API (Debian: libzmq3-dev, ZeroMQ 4.3).
#include <zmq.h>
