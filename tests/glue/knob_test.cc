#include "usched/glue/knob.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "fake_fs.h"

namespace usched::glue {
namespace {

using testing::TempDir;

TEST(Knob, WriteReplacesTheWholeValueAndReadReturnsIt) {
  TempDir t;
  testing::put(t / "cpuset.cpus", "0-11\n");
  ASSERT_TRUE(write_knob(t / "cpuset.cpus", "0-3").is_ok());
  auto r = read_knob(t / "cpuset.cpus");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value(), "0-3");
  testing::put(t / "x", "  1 \n");
  EXPECT_EQ(read_knob_trimmed(t / "x").value(), "1");
}

TEST(Knob, WriteNeverCreatesAMissingKnob) {
  TempDir t;
  auto st = write_knob(t / "cpuset.cpu", "0-5");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.err(), ENOENT);
  EXPECT_FALSE(testing::exists(t / "cpuset.cpu"));
  EXPECT_EQ(st.error().op, "write");
  EXPECT_EQ(st.error().value, "0-5");
  Status s = st;
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "write " + (t / "cpuset.cpu") + " = '0-5': No such file or directory (ENOENT)");
}

TEST(Knob, ErrorMessageNamesOperationPathValueAndErrno) {
  KnobError e{"write", "/sys/fs/cgroup/cpuset/usched/batch/cpuset.cpus", "0-5", EINVAL};
  EXPECT_EQ(e.message(), "write /sys/fs/cgroup/cpuset/usched/batch/cpuset.cpus = '0-5': Invalid argument (EINVAL)");
  EXPECT_EQ(e.status().code(), Code::kInternal);
  auto s = sys_error("sched_setaffinity", "tid 123", "0-1", ESRCH);
  EXPECT_EQ(s.message(), "sched_setaffinity tid 123 = '0-1': No such process (ESRCH)");
  EXPECT_EQ(KnobError({"read", "/x", "", ENOENT}).message(), "read /x: No such file or directory (ENOENT)");
}

TEST(Knob, ErrnoMapsToStatusCodes) {
  EXPECT_EQ(code_for_errno(EPERM), Code::kPermissionDenied);
  EXPECT_EQ(code_for_errno(EACCES), Code::kPermissionDenied);
  EXPECT_EQ(code_for_errno(ENOENT), Code::kNotFound);
  EXPECT_EQ(code_for_errno(ESRCH), Code::kNotFound);
  EXPECT_EQ(code_for_errno(ENOSPC), Code::kResourceExhausted);
  EXPECT_EQ(code_for_errno(ENOMEM), Code::kResourceExhausted);
  EXPECT_EQ(code_for_errno(EBUSY), Code::kFailedPrecondition);
  EXPECT_EQ(code_for_errno(EINVAL), Code::kInternal);
  EXPECT_EQ(errno_name(ENOSPC), "ENOSPC");
}

TEST(Knob, MakeDirAdoptsAnExistingDirectoryAndRemoveDirToleratesAGoneOne) {
  TempDir t;
  EXPECT_TRUE(make_dir(t / "a").is_ok());
  EXPECT_TRUE(make_dir(t / "a").is_ok());
  testing::put(t / "file", "");
  EXPECT_EQ(make_dir(t / "file").err(), EEXIST);
  EXPECT_EQ(make_dir(t / "no/such").err(), ENOENT);
  EXPECT_TRUE(remove_dir(t / "a").is_ok());
  EXPECT_TRUE(remove_dir(t / "a").is_ok());
}

TEST(Knob, TraceHookSeesEveryWriteMkdirAndRmdirInOrder) {
  TempDir t;
  testing::put(t / "k", "");
  testing::TraceRecorder rec(t.path());
  (void)make_dir(t / "d");
  (void)write_knob(t / "k", "1");
  (void)write_knob(t / "missing", "2");
  (void)read_knob(t / "k");
  (void)remove_dir(t / "d");
  EXPECT_EQ(rec.lines, (std::vector<std::string>{"mkdir d", "write k=1", "write missing=2", "rmdir d"}));
}

}  // namespace
}  // namespace usched::glue
