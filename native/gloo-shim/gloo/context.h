// See rendezvous/store.h: declarations only (the one member below is named by
// an inline method of ProcessGroupGloo that the addon does not call).
#pragma once
#include <chrono>
namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo
