// Internal access from the C API handle to the engine, for tests that
// must reach what the C API deliberately hides (the device's fault
// injection under a mounted volume). Not exported from libzfile.so.
#ifndef ZFILE_API_ZFILE_INTERNAL_H_
#define ZFILE_API_ZFILE_INTERNAL_H_

#include "engine/volume.h"
#include "zfile/zfile.h"

namespace zfile {

// The embedded volume behind `vol`.
Volume* InternalVolume(zfile_vol* vol);

}  // namespace zfile

#endif  // ZFILE_API_ZFILE_INTERNAL_H_
