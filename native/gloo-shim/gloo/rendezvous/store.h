// Declarations of the gloo types that libtorch's ProcessGroupGloo.hpp names,
// for libtorch distributions that ship c10d's headers without gloo's. The
// addon only holds these types through pointers created inside libtorch, so
// declarations suffice; the base class below matches gloo's interface for the
// inline GlooStore in that header, which the addon never instantiates.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace gloo {
namespace rendezvous {
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) = 0;
};
}  // namespace rendezvous
}  // namespace gloo
