#include "device/zone.h"

#include <cerrno>

namespace zfile {

std::string_view ConditionShortName(ZoneCondition cond) {
  switch (cond) {
    case ZoneCondition::kNotWp:
      return "nw";
    case ZoneCondition::kEmpty:
      return "em";
    case ZoneCondition::kImplicitOpen:
      return "oi";
    case ZoneCondition::kExplicitOpen:
      return "oe";
    case ZoneCondition::kClosed:
      return "cl";
    case ZoneCondition::kFull:
      return "fu";
    case ZoneCondition::kReadOnly:
      return "ro";
    case ZoneCondition::kOffline:
      return "ol";
  }
  return "?";
}

std::string_view ConditionName(ZoneCondition cond) {
  switch (cond) {
    case ZoneCondition::kNotWp:
      return "not-write-pointer";
    case ZoneCondition::kEmpty:
      return "empty";
    case ZoneCondition::kImplicitOpen:
      return "implicit-open";
    case ZoneCondition::kExplicitOpen:
      return "explicit-open";
    case ZoneCondition::kClosed:
      return "closed";
    case ZoneCondition::kFull:
      return "full";
    case ZoneCondition::kReadOnly:
      return "readonly";
    case ZoneCondition::kOffline:
      return "offline";
  }
  return "?";
}

std::string_view TypeName(ZoneType type) {
  switch (type) {
    case ZoneType::kConventional:
      return "CONVENTIONAL";
    case ZoneType::kSeqWriteRequired:
      return "SEQ_WRITE_REQUIRED";
    case ZoneType::kSeqWritePreferred:
      return "SEQ_WRITE_PREFERRED";
  }
  return "?";
}

std::string_view ZoneOpName(ZoneOp op) {
  switch (op) {
    case ZoneOp::kReset:
      return "reset";
    case ZoneOp::kOpen:
      return "open";
    case ZoneOp::kClose:
      return "close";
    case ZoneOp::kFinish:
      return "finish";
  }
  return "?";
}

Result<ZoneCondition> ParseCondition(std::string_view name) {
  for (auto c : {ZoneCondition::kNotWp, ZoneCondition::kEmpty, ZoneCondition::kImplicitOpen,
                 ZoneCondition::kExplicitOpen, ZoneCondition::kClosed, ZoneCondition::kFull,
                 ZoneCondition::kReadOnly, ZoneCondition::kOffline}) {
    if (name == ConditionName(c) || name == ConditionShortName(c)) return c;
  }
  return Status(EINVAL, "unknown zone condition '" + std::string(name) + "'");
}

}  // namespace zfile
