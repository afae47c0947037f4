#!/usr/bin/env python3
"""task-checkpoint.py SOCKET NAMESPACE CONTAINER IMAGE_PATH [--open-tcp] [--exit]

containerd's Tasks.Checkpoint with runc's CheckpointOptions as the Go client sends them
(open_tcp, exit, image_path), which neither ctr nor CRI can set: ctr's task checkpoint
always sends open_tcp false, CRI sends no options. containerd hands the options to the
shim and the image set lands in IMAGE_PATH. Speaks gRPC by hand like task-update.py
(whose helpers it uses). Exit 0 when containerd answered with a message.
"""
import importlib.util
import os
import sys

_spec = importlib.util.spec_from_file_location(
    "task_update", os.path.join(os.path.dirname(os.path.abspath(__file__)), "task-update.py"))
tu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tu)


def varint_field(num, value):
    return tu.varint(num << 3) + tu.varint(value)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    if len(args) != 4 or flags - {"--open-tcp", "--exit"}:
        print(__doc__, file=sys.stderr)
        return 2
    sock_path, ns, cid, image_path = args
    # containerd.runc.v1.CheckpointOptions: exit 1, open_tcp 2, image_path 8
    opts = b""
    if "--exit" in flags:
        opts += varint_field(1, 1)
    if "--open-tcp" in flags:
        opts += varint_field(2, 1)
    opts += tu.field_bytes(8, image_path.encode())
    any_msg = tu.field_bytes(1, b"containerd.runc.v1.CheckpointOptions") + tu.field_bytes(2, opts)
    # containerd.services.tasks.v1.CheckpointTaskRequest: container_id 1, options 3
    req = tu.field_bytes(1, cid.encode()) + tu.field_bytes(3, any_msg)
    return tu.unary(sock_path, ns, "/containerd.services.tasks.v1.Tasks/Checkpoint", req, "task-checkpoint")


if __name__ == "__main__":
    sys.exit(main())
