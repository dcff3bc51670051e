// IoWaiter: one asynchronous request that a thread submits and then waits
// for. Lets a caller submit under a lock (to fix the device order of
// writes to a zone) and wait after releasing it.
#ifndef ZFILE_DEVICE_IO_WAITER_H_
#define ZFILE_DEVICE_IO_WAITER_H_

#include <condition_variable>
#include <mutex>

#include "device/zoned_device.h"

namespace zfile {

class IoWaiter {
 public:
  IoWaiter(IoOp op, uint64_t offset, void* buf, size_t len) {
    req_.op = op;
    req_.offset = offset;
    req_.buf = buf;
    req_.len = len;
    req_.on_complete = [this](IoRequest*) {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_one();
    };
  }
  IoWaiter(const IoWaiter&) = delete;
  IoWaiter& operator=(const IoWaiter&) = delete;

  void Submit(ZonedDevice* dev) { dev->Submit(&req_); }

  // Waits for completion; returns the request's result (bytes or -errno).
  int64_t Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return req_.result;
  }
  // Whether the request has completed (Wait() would not block).
  bool Done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  const IoRequest& request() const { return req_; }

 private:
  IoRequest req_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

}  // namespace zfile

#endif  // ZFILE_DEVICE_IO_WAITER_H_
