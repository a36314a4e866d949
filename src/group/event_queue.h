// A blocking queue of coordinator events, bounded in bytes so that members
// streaming large segments cannot outrun the image writer. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "group/protocol.h"

namespace ckpt::group {

struct Event {
  enum Kind { kMessage, kHello, kClient, kLost } kind = kMessage;
  int rank = -1;
  Message msg;
  std::shared_ptr<Channel> channel;  // kHello / kClient: the new connection
};

class EventQueue {
 public:
  explicit EventQueue(std::size_t max_bytes = 64u << 20) : max_bytes_(max_bytes) {}
  void Push(Event e) {
    std::unique_lock<std::mutex> lk(mu_);
    std::size_t n = e.msg.payload.size();
    full_cv_.wait(lk, [&] { return bytes_ == 0 || bytes_ + n <= max_bytes_; });
    bytes_ += n;
    q_.push_back(std::move(e));
    cv_.notify_one();
  }
  std::optional<Event> Pop(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty(); })) return std::nullopt;
    Event e = std::move(q_.front());
    q_.pop_front();
    bytes_ -= e.msg.payload.size();
    full_cv_.notify_all();
    return e;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_, full_cv_;
  std::deque<Event> q_;
  std::size_t bytes_ = 0;
  std::size_t max_bytes_;
};

}  // namespace ckpt::group
