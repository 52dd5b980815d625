#!/usr/bin/env python3
"""A usched client in Python, with Debian 12's python3-grpcio.

Generate the stubs first (see README.md): ./gen.sh STUBS_DIR, then
    PYTHONPATH=STUBS_DIR python3 usched_example.py --socket /run/usched/usched.sock

It asks uschedd's standard health service whether it is SERVING, lists the
services reflection knows, creates a scheduler, binds a child process to it
and reads the child's CPU affinity back from /proc, shows that a scheduler
that does not exist is NOT_FOUND, and destroys what it made. Exit status 0
when each step saw what it expected.
"""
import argparse
import os
import subprocess
import sys

import grpc

from usched.v1 import usched_pb2, usched_pb2_grpc

try:  # made by gen.sh from Debian's grpc-proto package
    import health_pb2
    import health_pb2_grpc
    import reflection_pb2
    import reflection_pb2_grpc
except ImportError:
    health_pb2 = None


def cpus_allowed(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    return ""


def check_health(channel, timeout):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "usched.v1.Usched"):
        r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
        print(f"health {service or '(server)'}: {status}")
        if status != "SERVING":
            return False
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    names = []
    for resp in stub.ServerReflectionInfo(iter([req]), timeout=timeout):
        names += [s.name for s in resp.list_services_response.service]
    print("reflection: " + " ".join(sorted(names)))
    return "usched.v1.Usched" in names


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=os.environ.get("USCHED_SOCKET") or "/run/usched/usched.sock")
    ap.add_argument("--scheduler", default="pyexample", help="name of the scheduler to create")
    ap.add_argument("--pool", default="cpu0", help="its pool, in root's cpu numbers")
    ap.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, seconds")
    a = ap.parse_args()

    channel = grpc.insecure_channel("unix:" + a.socket)
    ok = True
    if health_pb2 is not None:
        ok = check_health(channel, a.timeout) and ok
    else:
        print("health: stubs not generated (apt-get install grpc-proto, then gen.sh)")

    stub = usched_pb2_grpc.UschedStub(channel)
    names = [s.spec.name for s in stub.ListSchedulers(usched_pb2.ListSchedulersRequest(), timeout=a.timeout).schedulers]
    print("schedulers: " + " ".join(names))

    spec = usched_pb2.SchedulerSpec(name=a.scheduler, pool=a.pool, lwktpri=6)
    sched = stub.CreateScheduler(usched_pb2.CreateSchedulerRequest(spec=spec), timeout=a.timeout).scheduler
    print(f"created {sched.spec.name} on cpus {sched.effective_cpus}")
    child = subprocess.Popen(["sleep", "60"])
    try:
        stub.Bind(usched_pb2.BindRequest(name=a.scheduler, pid=child.pid), timeout=a.timeout)
        allowed = cpus_allowed(child.pid)
        print(f"child {child.pid} bound: Cpus_allowed_list {allowed}")
        ok = ok and allowed == sched.effective_cpus
    finally:
        child.kill()
        child.wait()
        stub.DestroyScheduler(usched_pb2.DestroySchedulerRequest(name=a.scheduler, force=True), timeout=a.timeout)

    try:
        stub.GetScheduler(usched_pb2.GetSchedulerRequest(name="no-such-scheduler"), timeout=a.timeout)
        print("GetScheduler(no-such-scheduler) succeeded")
        ok = False
    except grpc.RpcError as e:
        print(f"no-such-scheduler: {e.code().name}: {e.details()}")
        ok = ok and e.code() == grpc.StatusCode.NOT_FOUND
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
