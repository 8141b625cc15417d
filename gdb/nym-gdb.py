# nym's gdb extension, loaded by `nym debug` (or by hand:
# `gdb IMAGE -x nym-gdb.py -ex 'target remote :1234'`).
#
# A job is a generic async fn: its body is the function
# `CRATE::JOB::{async_fn#0}<...>`, one per instantiation, which gdb's
# `break JOB` does not find. This extension adds:
#
#   break JOB        a job's name (`start`, `web::start`) stops at the first
#                    line of its async body; anything else is gdb's own break
#   nym-break JOB    the same, for jobs only
#   info nym-tasks   the executor's jobs (state, polls), its background
#                    tasks, timers and I/O waiters, from the guest's memory
#
# It needs nothing of nym but the image's debug information and two
# unmangled statics of the guest runtime, NYM_TASKS and NYM_EXECUTOR
# (targets/baremetal/src/runtime/executor.rs), whose layout is plain
# 64-bit words.
import re
import struct

import gdb

ASYNC_BODY = "{async_fn#0}"
STATES = {0: "unused", 1: "waiting", 2: "finished", 3: "failed", 4: "running"}


def job_bodies(name):
    """The (file, decl_line, symbol) of each async body of job `name`."""
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*", name):
        return []
    listing = gdb.execute(
        "info functions -q -n %s::[{]async_fn#0[}]" % name, to_string=True
    )
    wanted = re.compile(r"^(.*::)?%s::\{async_fn#0\}(<|$)" % re.escape(name))
    found = []
    for line in listing.splitlines():
        m = re.match(r"^\d+:\s+static fn (.*?)\(", line)
        if not m or not wanted.match(m.group(1)):
            continue
        sym = gdb.lookup_static_symbol(m.group(1)) or gdb.lookup_global_symbol(
            m.group(1)
        )
        if sym is not None and sym.symtab is not None:
            found.append(sym)
    return found


def body_start(sym):
    """`(line, address)` of the job's first statement: the first line after
    its signature that has code in the body, at its lowest address (a line
    heading a loop has another place, run at every turn)."""
    try:
        block = gdb.block_for_pc(int(sym.value().address))
        entries = [
            (e.line, e.pc)
            for e in sym.symtab.linetable()
            if block.start <= e.pc < block.end and e.line > sym.line
        ]
    except (gdb.error, RuntimeError, TypeError):
        entries = []
    if not entries:
        return None
    line = min(entries)[0]
    return line, min(pc for (l, pc) in entries if l == line)


def job_locations(name):
    """`(file:line, address)` of the first statement of each instantiation
    of the job named `name`."""
    found = []
    for sym in job_bodies(name):
        start = body_start(sym)
        if start is None:
            found.append(("%s:%d" % (sym.symtab.fullname(), sym.line), None))
        else:
            found.append(("%s:%d" % (sym.symtab.fullname(), start[0]), start[1]))
    return found


def split_condition(arg):
    m = re.match(r"^(.*?)\s+if\s+(.*)$", arg)
    return (m.group(1), m.group(2)) if m else (arg, None)


def break_job(name, condition=None):
    """Breakpoints at the job's body; False if there is no such job."""
    locations = job_locations(name)
    for line, address in locations:
        bp = gdb.Breakpoint(line if address is None else "*%d" % address)
        if condition:
            bp.condition = condition
        print("nym: %s is a job: breakpoint %d at its body, %s" % (name, bp.number, line))
    return bool(locations)


class NymBreak(gdb.Command):
    """nym-break JOB: stop at the first line of the job's async body."""

    def __init__(self):
        super().__init__("nym-break", gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_SYMBOL)

    def invoke(self, arg, from_tty):
        name, condition = split_condition(arg.strip())
        if not name:
            raise gdb.GdbError("nym-break JOB: which job? (`start`, `web::start`)")
        if not break_job(name, condition):
            raise gdb.GdbError(
                "no job `%s` in this image (no function %s::%s)"
                % (name, name, ASYNC_BODY)
            )


class Break(gdb.Command):
    """break LOCATION [if COND]: gdb's break, where a job's name (`start`)
    stops at the first line of the job's async body (nym's extension)."""

    def __init__(self):
        super().__init__("break", gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_LOCATION)

    def invoke(self, arg, from_tty):
        spec, condition = split_condition(arg.strip())
        if spec and break_job(spec, condition):
            return
        if not spec:
            spec = "*%d" % int(gdb.selected_frame().pc())
        try:
            gdb.decode_line(spec)
        except gdb.error as e:
            # What gdb's own break answers in a guest, where no library
            # loads later to make a pending breakpoint worth keeping.
            raise gdb.GdbError(str(e))
        bp = gdb.Breakpoint(spec)
        if condition:
            bp.condition = condition


def static_address(name):
    """The address of the unmangled static `name` (its ELF symbol)."""
    # In a Rust frame the name would be looked up in the frame's crate:
    # C looks up the ELF symbol itself.
    language = gdb.parameter("language")
    gdb.execute("set language c", to_string=True)
    try:
        return int(gdb.parse_and_eval("(unsigned long)&%s" % name))
    except gdb.error:
        raise gdb.GdbError(
            "no %s in this image: is it a nym guest (`nym build --target kvm`)?" % name
        )
    finally:
        gdb.execute("set language %s" % language, to_string=True)


class InfoTasks(gdb.Command):
    """info nym-tasks: the executor's jobs and what it waits on."""

    def __init__(self):
        super().__init__("info nym-tasks", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        inferior = gdb.selected_inferior()
        tasks = static_address("NYM_TASKS")
        executor = static_address("NYM_EXECUTOR")
        print("  #  state     polls  job")
        for i in range(16):
            raw = bytes(inferior.read_memory(tasks + 32 * i, 32))
            name_at, name_len, state, polls = struct.unpack("<4Q", raw)
            if state == 0:
                continue
            name = bytes(inferior.read_memory(name_at, min(name_len, 200))).decode(
                "utf-8", "replace"
            )
            print("%3d  %-8s %6d  %s" % (i, STATES.get(state, "?"), polls, name))
        background, rounds, timers, io, deadline = struct.unpack(
            "<5Q", bytes(inferior.read_memory(executor, 40))
        )
        print(
            "background tasks: %d (polled in %d rounds); timers: %d%s; waiting for I/O: %s"
            % (
                background,
                rounds,
                timers,
                " (next at %d ns)" % deadline if deadline else "",
                "yes" if io else "no",
            )
        )


NymBreak()
Break()
InfoTasks()
