// libzfile.so is zfile_core (linked whole) behind the C API's version
// script (libzfile.map); this file only gives the shared library target a
// source of its own.
namespace zfile {
namespace {
[[maybe_unused]] constexpr int kSharedLibraryTranslationUnit = 0;
}  // namespace
}  // namespace zfile
