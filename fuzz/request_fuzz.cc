//! libFuzzer target: request validation in the core. The input is read as
//! a sequence of create/update/destroy/bind/unbind/hotplug requests with
//! hostile fields (names with "..", huge and negative numbers, pools
//! beyond the parent, CPUs that do not exist) applied to one Tree. Every
//! request either fails cleanly or leaves a tree whose invariants hold.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "usched/tree.h"

namespace {

using namespace usched;

std::string name_from(FuzzedDataProvider& in) {
  static const char* parts[] = {"a", "b", "a/b", "a/b/c", "b/a", "..", "a/..", "/a", "a//b",
                                "", "a/b/c/d/e/f/g/h/i", "x y", "a/.", "NORM", "\xff"};
  if (in.ConsumeBool()) return parts[in.ConsumeIntegralInRange<size_t>(0, std::size(parts) - 1)];
  return in.ConsumeRandomLengthString(64);
}

void check(const Tree& t) {
  t.for_each([&](const Entity& e) {
    if (!e.effective().is_subset_of(e.phys())) __builtin_trap();
    if (e.vcpu_count() > Tree::kMaxVcpus) __builtin_trap();
    if (!e.is_root() && !e.phys().is_subset_of(e.parent()->phys())) __builtin_trap();
    for (auto& [key, m] : e.members()) {
      if (t.entity_of(key) != &e) __builtin_trap();
      if (e.spec().locked && (m.vcpu < 0 || m.vcpu >= e.vcpu_count())) __builtin_trap();
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Tree t(CpuSet::range(0, 7), CpuSet::range(0, 7));
  for (int step = 0; step < 64 && in.remaining_bytes() > 0; ++step) {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
      case 0:
      case 1: {
        EntitySpec s;
        s.name = name_from(in);
        auto pool = PoolSpec::parse(std::string_view(in.ConsumeRandomLengthString(32)));
        if (pool.is_ok()) s.pool = *pool;
        s.vcpus = in.ConsumeIntegral<int>() % 5000;
        s.lwktpri = in.ConsumeIntegralInRange<int>(-3, 40);
        s.locked = in.ConsumeBool();
        s.exclusive = in.ConsumeBool();
        (void)t.create(s);
        break;
      }
      case 2: {
        EntityUpdate u;
        if (in.ConsumeBool()) u.vcpus = in.ConsumeIntegral<int>();
        if (in.ConsumeBool()) u.lwktpri = in.ConsumeIntegral<int>();
        if (in.ConsumeBool()) u.exclusive = in.ConsumeBool();
        if (in.ConsumeBool()) u.locked = in.ConsumeBool();
        if (in.ConsumeBool()) {
          auto pool = PoolSpec::parse(std::string_view(in.ConsumeRandomLengthString(32)));
          if (pool.is_ok()) u.pool = *pool;
        }
        (void)t.update(name_from(in), u);
        break;
      }
      case 3:
        (void)t.destroy(name_from(in), in.ConsumeBool());
        break;
      case 4: {
        Member m;
        m.key = MemberKey{in.ConsumeIntegralInRange<int>(-2, 8), in.ConsumeIntegralInRange<int>(-1, 3)};
        m.requested_vcpu = in.ConsumeIntegralInRange<int>(-2, 10);
        if (in.ConsumeBool()) {
          (void)t.bind(name_from(in), m);
        } else {
          (void)t.unbind(m.key);
        }
        break;
      }
      case 5: {
        CpuSet online;
        for (int c = 0; c < 8; ++c) {
          if (in.ConsumeBool()) online.add(c);
        }
        t.set_online(online);
        break;
      }
    }
    check(t);
  }
  return 0;
}
