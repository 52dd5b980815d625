#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "usched/tree.h"

namespace usched {
namespace {

EntitySpec spec(const std::string& name, const std::string& pool, int vcpus = 0) {
  EntitySpec s;
  s.name = name;
  auto p = PoolSpec::parse(std::string_view(pool));
  EXPECT_TRUE(p.is_ok()) << pool;
  if (p) s.pool = *p;
  s.vcpus = vcpus;
  return s;
}

EntitySpec excl(const std::string& name, const std::string& pool, int vcpus = 0) {
  EntitySpec s = spec(name, pool, vcpus);
  s.exclusive = true;
  return s;
}

EntitySpec locked(const std::string& name, const std::string& pool, int vcpus = 0) {
  EntitySpec s = spec(name, pool, vcpus);
  s.locked = true;
  return s;
}

Tree machine(int cpus) { return Tree(CpuSet::range(0, cpus - 1), CpuSet::range(0, cpus - 1)); }

std::vector<std::string> vcpu_strings(const Entity& e, bool effective = false) {
  std::vector<std::string> out;
  for (const CpuSet& s : effective ? e.vcpu_effective() : e.vcpu_phys()) out.push_back(s.to_string());
  return out;
}

using Strings = std::vector<std::string>;

Member member(int pid, int requested = -1) {
  Member m;
  m.key = {pid, 0};
  m.requested_vcpu = requested;
  return m;
}

// A snapshot of every spec, for "nothing changed" checks.
std::vector<std::string> snapshot(const Tree& t) {
  std::vector<std::string> out;
  t.for_each([&](const Entity& e) {
    const EntitySpec& s = e.spec();
    out.push_back(s.name + "|" + s.pool.to_string() + "|" + std::to_string(s.vcpus) + "|" +
                  std::to_string(s.lwktpri) + "|" + std::to_string(s.locked) + "|" +
                  std::to_string(s.exclusive) + std::to_string(s.isolated) + "|" + e.phys().to_string() + "|" +
                  e.effective().to_string() + "|" + std::to_string(e.members().size()));
  });
  return out;
}

TEST(TreeRoot, VcpusArePresentCpusInOrder) {
  Tree t(CpuSet::of({0, 2, 5}), CpuSet::of({0, 2, 5}));
  EXPECT_EQ(t.root().vcpu_count(), 3);
  EXPECT_EQ(vcpu_strings(t.root()), (Strings{"0", "2", "5"}));
  EXPECT_EQ(t.root().name(), "");
  EXPECT_TRUE(t.root().is_root());
  EXPECT_EQ(t.find(""), &t.root());
  EXPECT_EQ(t.size(), 0u);
}

TEST(TreeResolve, FourVcpusOnEightCpusGetTwoEachContiguous) {
  Tree t = machine(8);
  auto r = t.create(spec("a", "cpu*", 4));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(vcpu_strings(**r), (Strings{"0-1", "2-3", "4-5", "6-7"}));
  EXPECT_EQ((*r)->phys().to_string(), "0-7");
}

TEST(TreeResolve, EightVcpusOnFourCpusWrapModulo) {
  Tree t = machine(8);
  auto r = t.create(spec("a", "cpu4-7", 8));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(vcpu_strings(**r), (Strings{"4", "5", "6", "7", "4", "5", "6", "7"}));
}

TEST(TreeResolve, ChildPoolsAreInParentVcpuNumbersThreeLevelsDeep) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(spec("batch", "cpu4-7")).is_ok());  // vcpu i -> cpu 4+i
  auto job = t.create(spec("batch/job", "cpu2-3", 4));       // 4 vcpus on cpus 6,7
  ASSERT_TRUE(job.is_ok()) << job.status().to_string();
  EXPECT_EQ(vcpu_strings(**job), (Strings{"6", "7", "6", "7"}));
  auto leaf = t.create(spec("batch/job/leaf", "cpu1 cpu2", 1));  // job vcpus 1,2 -> 7,6
  ASSERT_TRUE(leaf.is_ok()) << leaf.status().to_string();
  EXPECT_EQ(vcpu_strings(**leaf), (Strings{"6-7"}));
  EXPECT_EQ((*leaf)->depth(), 3);
  EXPECT_EQ(t.size(), 3u);
}

TEST(TreeResolve, StarChildFollowsParentResize) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(spec("batch", "cpu0-3")).is_ok());
  ASSERT_TRUE(t.create(spec("batch/any", "cpu*")).is_ok());
  EXPECT_EQ(t.find("batch/any")->vcpu_count(), 4);
  EntityUpdate u;
  u.pool = *PoolSpec::parse(std::string_view("cpu0-5"));
  ASSERT_TRUE(t.update("batch", u).is_ok());
  EXPECT_EQ(t.find("batch/any")->vcpu_count(), 6);
  EXPECT_EQ(t.find("batch/any")->phys().to_string(), "0-5");
}

TEST(TreeCreate, ValidationErrorsAndCodes) {
  Tree t = machine(2);
  ASSERT_TRUE(t.create(spec("batch", "cpu*", 4)).is_ok());

  auto bad_name = t.create(spec("a/../b", "cpu*"));
  EXPECT_EQ(bad_name.status().code(), Code::kInvalidArgument);

  auto no_parent = t.create(spec("other/jobA", "cpu*"));
  EXPECT_EQ(no_parent.status().code(), Code::kNotFound);
  EXPECT_EQ(no_parent.status().message(), "parent 'other' of 'other/jobA' does not exist");

  auto dup = t.create(spec("batch", "cpu0"));
  EXPECT_EQ(dup.status().code(), Code::kAlreadyExists);

  auto outside = t.create(spec("batch/jobA", "cpu5"));
  EXPECT_EQ(outside.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(outside.status().message(), "pool cpu5 is outside batch's 4 vcpus (cpu0-3)");

  auto outside_root = t.create(spec("x", "cpu2"));
  EXPECT_EQ(outside_root.status().message(), "pool cpu2 is outside the machine's 2 CPUs (cpu0-1)");

  EntitySpec big = spec("y", "cpu*", Tree::kMaxVcpus + 1);
  EXPECT_EQ(t.create(big).status().code(), Code::kInvalidArgument);
  EntitySpec neg = spec("y", "cpu*", -1);
  EXPECT_EQ(t.create(neg).status().code(), Code::kInvalidArgument);
  EntitySpec pri = spec("y", "cpu*");
  pri.lwktpri = 40;
  EXPECT_EQ(t.create(pri).status().message(), "lwktpri 40 is out of range 0..31");
  EXPECT_EQ(t.size(), 1u);
}

TEST(TreeCreate, FailuresLeaveTreeUnchanged) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(excl("a", "cpu0-1")).is_ok());
  ASSERT_TRUE(t.create(spec("b", "cpu*")).is_ok());
  auto before = snapshot(t);
  size_t n = t.size();
  EXPECT_FALSE(t.create(excl("c", "cpu1-2")).is_ok());
  EXPECT_FALSE(t.create(spec("b/x", "cpu9")).is_ok());
  EXPECT_FALSE(t.create(spec("zz/x", "cpu1")).is_ok());
  EXPECT_EQ(t.size(), n);
  EXPECT_EQ(snapshot(t), before);
  EXPECT_EQ(t.find("c"), nullptr);
}

TEST(TreeExclusive, RemovesCpusFromUnrelatedButNotAncestorsOrDescendants) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(spec("batch", "cpu0-3")).is_ok());
  ASSERT_TRUE(t.create(excl("batch/rt", "cpu0-1")).is_ok());  // cpus 0-1
  ASSERT_TRUE(t.create(spec("batch/rt/sub", "cpu0")).is_ok());
  ASSERT_TRUE(t.create(spec("batch/other", "cpu*")).is_ok());
  ASSERT_TRUE(t.create(spec("web", "cpu*")).is_ok());

  EXPECT_EQ(t.find("batch")->effective().to_string(), "0-3");       // ancestor keeps them
  EXPECT_EQ(t.find("batch/rt")->effective().to_string(), "0-1");
  EXPECT_EQ(t.find("batch/rt/sub")->effective().to_string(), "0");  // descendant keeps them
  EXPECT_EQ(t.find("batch/other")->effective().to_string(), "2-3");  // sibling loses them
  EXPECT_EQ(t.find("web")->effective().to_string(), "2-7");
  EXPECT_EQ(vcpu_strings(*t.find("batch/other"), true), (Strings{"", "", "2", "3"}));
  EXPECT_EQ(t.root().effective().to_string(), "0-7");
}

TEST(TreeExclusive, UnrelatedExclusiveOverlapIsRejectedNamingBoth) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(excl("a", "cpu0-3")).is_ok());
  auto r = t.create(excl("b", "cpu3-5"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("a"), std::string::npos);
  EXPECT_NE(r.status().message().find("b"), std::string::npos);
  EXPECT_NE(r.status().message().find("3"), std::string::npos) << r.status().message();
  // Nested exclusive inside an exclusive is fine: they are related.
  EXPECT_TRUE(t.create(excl("a/inner", "cpu0")).is_ok());
  // A non-exclusive entity may overlap.
  EXPECT_TRUE(t.create(spec("c", "cpu2-5")).is_ok());
}

TEST(TreeExclusive, UpdateMakingOverlapIsRejectedAndRolledBack) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(excl("a", "cpu0-3")).is_ok());
  ASSERT_TRUE(t.create(spec("b", "cpu3-5")).is_ok());
  auto before = snapshot(t);
  EntityUpdate u;
  u.exclusive = true;
  auto r = t.update("b", u);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(snapshot(t), before);
}

TEST(TreeExclusive, IsolatedNeedsExclusiveAndNothingChangesOnError) {
  Tree t = machine(8);
  EntitySpec s = spec("rt", "cpu3");
  s.isolated = true;
  auto r = t.create(s);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("isolated"), std::string::npos) << r.status().message();
  EXPECT_EQ(t.find("rt"), nullptr);

  s.exclusive = true;
  ASSERT_TRUE(t.create(s).is_ok());
  EXPECT_TRUE(t.find("rt")->spec().isolated);
  auto before = snapshot(t);
  EntityUpdate shared;
  shared.exclusive = false;  // isolated left on: refused
  EXPECT_EQ(t.update("rt", shared).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(snapshot(t), before);
  shared.isolated = false;
  ASSERT_TRUE(t.update("rt", shared).is_ok());
  EXPECT_FALSE(t.find("rt")->spec().isolated);
  EXPECT_FALSE(t.find("rt")->spec().exclusive);
}

TEST(TreeOnline, OfflineCpusStarveEntityAndRunnableFallsBackToAncestor) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(spec("batch", "cpu0-3")).is_ok());
  ASSERT_TRUE(t.create(spec("batch/job", "cpu2-3")).is_ok());
  t.set_online(CpuSet::of({0, 1, 4, 5, 6, 7}));
  const Entity* job = t.find("batch/job");
  EXPECT_TRUE(job->starved());
  EXPECT_EQ(job->runnable().to_string(), "0-1");
  EXPECT_EQ(t.find("batch")->effective().to_string(), "0-1");
  EXPECT_FALSE(t.find("batch")->starved());
  ASSERT_EQ(t.starved().size(), 1u);
  EXPECT_EQ(t.starved()[0], job);
  t.set_online(CpuSet::range(0, 7));
  EXPECT_FALSE(job->starved());
  EXPECT_EQ(job->runnable().to_string(), "2-3");
}

TEST(TreeOnline, ExclusiveCanStarveUnrelatedEntity) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(spec("small", "cpu3")).is_ok());
  ASSERT_TRUE(t.create(excl("big", "cpu2-3")).is_ok());
  EXPECT_TRUE(t.find("small")->starved());
  EXPECT_EQ(t.find("small")->runnable().to_string(), "0-3");  // root is ancestor of all
}

TEST(TreeBind, LockedPicksFewestMembersLowestIndex) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(locked("l", "cpu*", 3)).is_ok());
  std::vector<int> got;
  for (int pid = 1; pid <= 5; ++pid) {
    auto m = t.bind("l", member(pid));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    got.push_back((*m)->vcpu);
  }
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 0, 1}));
}

TEST(TreeBind, LockedHonoursRequestedVcpuAndCpusForIsThatVcpu) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(locked("l", "cpu*", 4)).is_ok());
  auto m = t.bind("l", member(7, 2));
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ((*m)->vcpu, 2);
  EXPECT_EQ(t.find("l")->cpus_for(**m).to_string(), "4-5");
  auto bad = t.bind("l", member(8, 4));
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

TEST(TreeBind, UnlockedHasNoVcpuAndRunsOnEffective) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(spec("u", "cpu1-2")).is_ok());
  auto m = t.bind("u", member(1, 1));
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ((*m)->vcpu, -1);
  EXPECT_EQ((*m)->requested_vcpu, 1);
  EXPECT_EQ(t.find("u")->cpus_for(**m).to_string(), "1-2");
}

TEST(TreeBind, RootAndMissingAreErrors) {
  Tree t = machine(2);
  EXPECT_EQ(t.bind("", member(1)).status().message(), "cannot bind to the root; pick a scheduler");
  EXPECT_EQ(t.bind("nope", member(1)).status().code(), Code::kNotFound);
}

TEST(TreeBind, RebindingMovesMemberAndIndexFollows) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(spec("a", "cpu*")).is_ok());
  ASSERT_TRUE(t.create(spec("b", "cpu*")).is_ok());
  ASSERT_TRUE(t.bind("a", member(5)).is_ok());
  ASSERT_TRUE(t.bind("b", member(5)).is_ok());
  EXPECT_TRUE(t.find("a")->members().empty());
  EXPECT_EQ(t.find("b")->members().size(), 1u);
  EXPECT_EQ(t.entity_of({5, 0}), t.find("b"));
  auto u = t.unbind({5, 0});
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ(*u, "b");
  EXPECT_EQ(t.entity_of({5, 0}), nullptr);
  EXPECT_EQ(t.unbind({123, 0}).status().message(), "pid 123 is not bound");
  EXPECT_EQ(t.unbind({123, 0}).status().code(), Code::kNotFound);
}

TEST(TreeUpdate, ShrinkMovesLockedMembersToLeastLoadedVcpu) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(locked("l", "cpu*", 4)).is_ok());
  ASSERT_TRUE(t.bind("l", member(1, 0)).is_ok());
  ASSERT_TRUE(t.bind("l", member(2, 3)).is_ok());
  ASSERT_TRUE(t.bind("l", member(3, 2)).is_ok());
  EntityUpdate u;
  u.vcpus = 2;
  ASSERT_TRUE(t.update("l", u).is_ok());
  EXPECT_EQ(t.member({1, 0})->vcpu, 0);
  EXPECT_EQ(t.member({2, 0})->vcpu, 1);  // vcpu 0 had one, vcpu 1 none
  EXPECT_EQ(t.member({3, 0})->vcpu, 0);  // then tie -> lowest index
  for (const auto& [_, m] : t.find("l")->members()) EXPECT_LT(m.vcpu, 2);
}

TEST(TreeUpdate, LockingAssignsEveryMemberUnlockingClears) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(spec("l", "cpu*")).is_ok());
  ASSERT_TRUE(t.bind("l", member(1)).is_ok());
  ASSERT_TRUE(t.bind("l", member(2, 3)).is_ok());
  ASSERT_TRUE(t.bind("l", member(3)).is_ok());
  EntityUpdate on;
  on.locked = true;
  ASSERT_TRUE(t.update("l", on).is_ok());
  EXPECT_EQ(t.member({1, 0})->vcpu, 0);
  EXPECT_EQ(t.member({2, 0})->vcpu, 3);
  EXPECT_EQ(t.member({3, 0})->vcpu, 1);
  EntityUpdate off;
  off.locked = false;
  ASSERT_TRUE(t.update("l", off).is_ok());
  for (const auto& [_, m] : t.find("l")->members()) EXPECT_EQ(m.vcpu, -1);
}

TEST(TreeUpdate, ShrinkBlockedByChildPoolAndTreeUnchanged) {
  Tree t = machine(8);
  ASSERT_TRUE(t.create(spec("batch", "cpu0-3")).is_ok());
  ASSERT_TRUE(t.create(spec("batch/jobA", "cpu3")).is_ok());
  auto before = snapshot(t);
  EntityUpdate u;
  u.vcpus = 2;
  auto r = t.update("batch", u);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "cannot shrink batch to 2 vcpus: child batch/jobA uses cpu3");
  EXPECT_EQ(snapshot(t), before);
  EXPECT_EQ(t.find("batch")->vcpu_count(), 4);
}

TEST(TreeUpdate, RootMissingAndBadValuesAreErrors) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(spec("a", "cpu*")).is_ok());
  EntityUpdate u;
  EXPECT_EQ(t.update("", u).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(t.update("zz", u).status().code(), Code::kNotFound);
  auto before = snapshot(t);
  EntityUpdate pri;
  pri.lwktpri = 99;
  EXPECT_EQ(t.update("a", pri).status().code(), Code::kInvalidArgument);
  EntityUpdate pool;
  pool.pool = *PoolSpec::parse(std::string_view("cpu7"));
  EXPECT_EQ(t.update("a", pool).status().message(),
            "pool cpu7 is outside the machine's 4 CPUs (cpu0-3)");
  EXPECT_EQ(snapshot(t), before);
  EntityUpdate ok;
  ok.lwktpri = 7;
  ok.class_override = std::optional<SchedClass>(SchedClass::kIdle);
  ASSERT_TRUE(t.update("a", ok).is_ok());
  EXPECT_EQ(t.find("a")->spec().lwktpri, 7);
  EXPECT_EQ(t.find("a")->class_params().cls, SchedClass::kIdle);
}

TEST(TreeDestroy, WithoutForceFailsWhenChildrenOrMembers) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(spec("batch", "cpu*")).is_ok());
  ASSERT_TRUE(t.create(spec("batch/a", "cpu0")).is_ok());
  ASSERT_TRUE(t.create(spec("batch/b", "cpu1")).is_ok());
  ASSERT_TRUE(t.bind("batch", member(1)).is_ok());
  auto r = t.destroy("batch", false);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            "batch has 2 children and 1 member; destroy them first or use force");
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.destroy("", true).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(t.destroy("nope", true).status().code(), Code::kNotFound);
  auto leaf = t.destroy("batch/a", false);
  ASSERT_TRUE(leaf.is_ok());
  EXPECT_EQ(leaf->destroyed, (Strings{"batch/a"}));
  EXPECT_EQ(t.size(), 2u);
}

TEST(TreeDestroy, ForceDestroysDepthFirstAndMovesMembersToLockedParent) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(locked("top", "cpu*", 2)).is_ok());
  ASSERT_TRUE(t.create(spec("top/mid", "cpu*")).is_ok());
  ASSERT_TRUE(t.create(spec("top/mid/leaf", "cpu0")).is_ok());
  ASSERT_TRUE(t.bind("top", member(1)).is_ok());  // vcpu 0
  ASSERT_TRUE(t.bind("top/mid", member(2)).is_ok());
  ASSERT_TRUE(t.bind("top/mid/leaf", member(3)).is_ok());
  auto r = t.destroy("top/mid", true);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->destroyed, (Strings{"top/mid/leaf", "top/mid"}));
  EXPECT_EQ(r->moved_to, "top");
  EXPECT_EQ(r->moved.size(), 2u);
  EXPECT_TRUE(r->released.empty());
  EXPECT_EQ(t.entity_of({2, 0}), t.find("top"));
  EXPECT_EQ(t.entity_of({3, 0}), t.find("top"));
  EXPECT_EQ(t.find("top")->members().size(), 3u);
  EXPECT_EQ(t.find("top")->members_on_vcpu(0), 2);
  EXPECT_EQ(t.find("top")->members_on_vcpu(1), 1);
  EXPECT_EQ(t.find("top/mid"), nullptr);
  EXPECT_EQ(t.size(), 1u);
}

TEST(TreeDestroy, ForceUnderRootReleasesMembers) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(spec("a", "cpu*")).is_ok());
  ASSERT_TRUE(t.create(spec("a/b", "cpu*")).is_ok());
  ASSERT_TRUE(t.bind("a", member(1)).is_ok());
  ASSERT_TRUE(t.bind("a/b", member(2)).is_ok());
  auto r = t.destroy("a", true);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->destroyed, (Strings{"a/b", "a"}));
  EXPECT_EQ(r->released.size(), 2u);
  EXPECT_TRUE(r->moved.empty());
  EXPECT_EQ(t.entity_of({1, 0}), nullptr);
  EXPECT_EQ(t.entity_of({2, 0}), nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(TreeDestroy, DestroyingExclusiveReturnsCpusToOthers) {
  Tree t = machine(4);
  ASSERT_TRUE(t.create(excl("x", "cpu0-1")).is_ok());
  ASSERT_TRUE(t.create(spec("y", "cpu*")).is_ok());
  EXPECT_EQ(t.find("y")->effective().to_string(), "2-3");
  ASSERT_TRUE(t.destroy("x", false).is_ok());
  EXPECT_EQ(t.find("y")->effective().to_string(), "0-3");
}

TEST(TreeWalk, PreOrderRootFirstChildrenSorted) {
  Tree t = machine(2);
  ASSERT_TRUE(t.create(spec("b", "cpu*")).is_ok());
  ASSERT_TRUE(t.create(spec("a", "cpu*")).is_ok());
  ASSERT_TRUE(t.create(spec("a/z", "cpu*")).is_ok());
  Strings names;
  t.for_each([&](const Entity& e) { names.push_back(e.name()); });
  EXPECT_EQ(names, (Strings{"", "a", "a/z", "b"}));
}

}  // namespace
}  // namespace usched
