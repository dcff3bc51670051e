// LockChecker: the registry of holds and of observed lock orders.
#include "sync/lock_checker.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace zfile {
namespace {

// Request ids of threads have the top bit set, so that they never collide
// with ids given to ScopedRequest.
constexpr uint64_t kThreadRequestBit = 1ull << 63;

thread_local uint64_t t_scoped_request = 0;  // 0: the thread acts for itself
thread_local uint64_t t_thread_request = 0;  // assigned on first use
std::atomic<uint64_t> g_next_thread_request{1};
std::atomic<uint64_t> g_next_lock_id{1};

struct HoldRecord {
  uint64_t hold_id;
  uint64_t lock_id;
  const std::string* name;  // the lock's; valid while the hold exists
  LockState state;
  std::source_location where;
};

// "Some request held lock `from` and then acquired lock `to`", first seen.
struct OrderEdge {
  uint64_t request;
  LockState from_state;
  std::source_location from_where;
  LockState to_state;
  std::source_location to_where;
};

struct Registry {
  std::mutex mu;
  LockChecker::ReportHandler handler;
  uint64_t next_hold_id = 1;
  std::unordered_map<uint64_t, std::vector<HoldRecord>> holds_by_request;
  std::unordered_map<uint64_t, uint64_t> request_of_hold;
  std::unordered_map<uint64_t, std::unordered_map<uint64_t, OrderEdge>> edges_from;
  std::unordered_map<uint64_t, std::unordered_set<uint64_t>> edges_to;  // for ForgetLock
  std::set<std::pair<uint64_t, uint64_t>> reported_pairs;               // (lower, higher) id
};

// Never destroyed: locks with static storage may still be destroyed (and
// call ForgetLock) after this translation unit's statics.
Registry& Reg() {
  static Registry* r = new Registry;
  return *r;
}

std::string Site(const std::source_location& w) {
  std::string file = w.file_name();
  const size_t slash = file.rfind('/');
  if (slash != std::string::npos) file = file.substr(slash + 1);
  return file + ":" + std::to_string(w.line()) + " in " + w.function_name();
}

std::string RequestLabel(uint64_t id) {
  if ((id & kThreadRequestBit) != 0) return "thread #" + std::to_string(id & ~kThreadRequestBit);
  return "request " + std::to_string(id);
}

std::string Quoted(const std::string& name) {
  return name.empty() ? std::string("(unnamed lock)") : "'" + name + "'";
}

}  // namespace

LockChecker::ReportHandler LockChecker::SetReportHandler(ReportHandler handler) {
  std::lock_guard<std::mutex> l(Reg().mu);
  return std::exchange(Reg().handler, std::move(handler));
}

void LockChecker::Report(const std::string& text) {
  ReportHandler handler;
  {
    std::lock_guard<std::mutex> l(Reg().mu);
    handler = Reg().handler;
  }
  if (handler) {
    handler(text);
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
}

LockChecker::ScopedRequest::ScopedRequest(uint64_t id) : previous_(t_scoped_request) {
  t_scoped_request = id;
}

LockChecker::ScopedRequest::~ScopedRequest() { t_scoped_request = previous_; }

uint64_t LockChecker::CurrentRequest() {
  if (t_scoped_request != 0) return t_scoped_request;
  if (t_thread_request == 0) {
    t_thread_request =
        kThreadRequestBit | g_next_thread_request.fetch_add(1, std::memory_order_relaxed);
  }
  return t_thread_request;
}

size_t LockChecker::HoldsOfCurrentRequest() {
  const uint64_t request = CurrentRequest();
  std::lock_guard<std::mutex> l(Reg().mu);
  auto it = Reg().holds_by_request.find(request);
  return it == Reg().holds_by_request.end() ? 0 : it->second.size();
}

uint64_t LockChecker::NewLockId() { return g_next_lock_id.fetch_add(1, std::memory_order_relaxed); }

void LockChecker::CheckOrder(uint64_t lock_id, const std::string& name, LockState s,
                             const std::source_location& where) {
  const uint64_t request = CurrentRequest();
  std::vector<std::string> reports;
  {
    Registry& r = Reg();
    std::lock_guard<std::mutex> l(r.mu);
    auto held = r.holds_by_request.find(request);
    if (held == r.holds_by_request.end()) return;
    for (const HoldRecord& h : held->second) {
      if (h.lock_id == lock_id) continue;  // re-acquiring a held lock is CheckWait's business
      // Earlier order: `lock_id` held, then `h.lock_id` acquired.
      auto from = r.edges_from.find(lock_id);
      if (from != r.edges_from.end()) {
        auto e = from->second.find(h.lock_id);
        const std::pair<uint64_t, uint64_t> pair(std::min(lock_id, h.lock_id),
                                                 std::max(lock_id, h.lock_id));
        if (e != from->second.end() && r.reported_pairs.insert(pair).second) {
          const OrderEdge& old = e->second;
          reports.push_back(
              "zfile lock checker: lock-order inversion between " + Quoted(*h.name) + " and " +
              Quoted(name) +
              " (warning; the acquire proceeds):\n  now:     " + RequestLabel(request) + " holds " +
              Quoted(*h.name) + " (" + LockStateName(h.state) + ", acquired at " + Site(h.where) +
              ") and acquires " + Quoted(name) + " (" + LockStateName(s) + ") at " + Site(where) +
              "\n  earlier: " + RequestLabel(old.request) + " held " + Quoted(name) + " (" +
              LockStateName(old.from_state) + ", acquired at " + Site(old.from_where) +
              ") and acquired " + Quoted(*h.name) + " (" + LockStateName(old.to_state) + ") at " +
              Site(old.to_where) +
              "\n  run at the same time, these two orders can deadlock: take the locks in one "
              "order");
        }
      }
      auto& out = r.edges_from[h.lock_id];
      if (out.find(lock_id) == out.end()) {
        out.emplace(lock_id, OrderEdge{request, h.state, h.where, s, where});
        r.edges_to[lock_id].insert(h.lock_id);
      }
    }
  }
  for (const std::string& text : reports) Report(text);
}

std::optional<LockChecker::Deadlock> LockChecker::CheckWait(uint64_t lock_id,
                                                            const std::string& name, LockState s,
                                                            const std::source_location& where) {
  const uint64_t request = CurrentRequest();
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  auto held = r.holds_by_request.find(request);
  if (held == r.holds_by_request.end()) return std::nullopt;
  const HoldRecord* mine = nullptr;
  size_t count = 0;
  for (const HoldRecord& h : held->second) {
    if (h.lock_id != lock_id) continue;
    mine = &h;  // the most recent
    ++count;
  }
  if (mine == nullptr) return std::nullopt;
  const LockState other =
      mine->state == LockState::kDirect ? LockState::kBuffered : LockState::kDirect;
  // Holding the lock in state s, the request only waits behind a closed gate.
  const std::string why = mine->state != s
                              ? std::string("it cannot enter ") + LockStateName(s) +
                                    " state before every " + LockStateName(mine->state) +
                                    " hold, this request's included, is released"
                              : std::string("the gate is closed: a ") + LockStateName(other) +
                                    " waiter is ahead of it and waits for this request's hold";
  const std::string holds =
      LockStateName(mine->state) + std::string(" state (acquired at ") + Site(mine->where) + ")" +
      (count > 1 ? " and " + std::to_string(count - 1) + " more hold(s)" : "");
  Deadlock d;
  d.report = "zfile lock checker: self-deadlock on " + Quoted(name) + ": " + RequestLabel(request) +
             " would wait for it in " + LockStateName(s) + " state at " + Site(where) +
             " while it holds it in " + holds + "; " + why + ". The acquire fails with EDEADLK.";
  d.message = "waiting for " + Quoted(name) + " in " + LockStateName(s) +
              " state would deadlock: this request holds it in " + holds;
  return d;
}

uint64_t LockChecker::OnAcquired(uint64_t lock_id, const std::string* name, LockState s,
                                 const std::source_location& where) {
  const uint64_t request = CurrentRequest();
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  const uint64_t id = r.next_hold_id++;
  r.holds_by_request[request].push_back(HoldRecord{id, lock_id, name, s, where});
  r.request_of_hold.emplace(id, request);
  return id;
}

void LockChecker::OnReleased(uint64_t hold_id) {
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  auto it = r.request_of_hold.find(hold_id);
  if (it == r.request_of_hold.end()) return;
  auto held = r.holds_by_request.find(it->second);
  r.request_of_hold.erase(it);
  if (held == r.holds_by_request.end()) return;
  std::vector<HoldRecord>& v = held->second;
  for (auto h = v.begin(); h != v.end(); ++h) {
    if (h->hold_id == hold_id) {
      v.erase(h);
      break;
    }
  }
  if (v.empty()) r.holds_by_request.erase(held);
}

void LockChecker::ForgetLock(uint64_t lock_id) {
  Registry& r = Reg();
  std::lock_guard<std::mutex> l(r.mu);
  if (auto out = r.edges_from.find(lock_id); out != r.edges_from.end()) {
    for (const auto& [to, edge] : out->second) {
      auto in = r.edges_to.find(to);
      if (in != r.edges_to.end() && in->second.erase(lock_id) != 0 && in->second.empty()) {
        r.edges_to.erase(in);
      }
    }
    r.edges_from.erase(out);
  }
  if (auto in = r.edges_to.find(lock_id); in != r.edges_to.end()) {
    for (uint64_t from : in->second) {
      auto out = r.edges_from.find(from);
      if (out != r.edges_from.end() && out->second.erase(lock_id) != 0 && out->second.empty()) {
        r.edges_from.erase(out);
      }
    }
    r.edges_to.erase(in);
  }
  for (auto it = r.reported_pairs.begin(); it != r.reported_pairs.end();) {
    it = (it->first == lock_id || it->second == lock_id) ? r.reported_pairs.erase(it)
                                                         : std::next(it);
  }
}

}  // namespace zfile
