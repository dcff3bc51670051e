// libzfile.so is zfile_core (linked whole) behind the C API's version
// script; this file gives the shared library target a source of its own.
#include "zfile/zfile.h"

extern "C" int zfile_api_version(void) { return ZFILE_API_VERSION; }
