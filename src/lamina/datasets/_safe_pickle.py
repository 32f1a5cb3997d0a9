"""Read the pickled parts of dataset files without letting them run code or exhaust memory.

CIFAR's batches are Python pickles (protocol 2, written by Python 2) and IMDB's `.npz` stores
ragged sequences as object arrays (pickles inside the `.npy` members). `pickle.Unpickler`, even
with a restricted `find_class`, still lets a file call what it names with arguments it chooses,
allocate what it claims and nest without bound. This module interprets the pickle opcodes
itself instead, and understands only what those files contain:

- data opcodes: ints, floats, strings, bytes, lists, tuples, dicts, the memo, protocol 4 frames;
- `numpy.core.multiarray._reconstruct(numpy.ndarray, shape, code)` followed by `BUILD` with an
  array state, and `numpy.dtype(code, align, copy)` followed by `BUILD` with a dtype state:
  both are validated and rebuilt here (the state's internal dtype flags are never trusted);
- `_codecs.encode(text, 'latin1')` (how protocol 2 spells bytes) and `bytes()`, decoded here.

Every other global and every other opcode that builds objects (INST, OBJ, NEWOBJ, EXT*,
PERSID, sets, buffers) is refused. An array must hold exactly the bytes (or the list of
objects) its shape and dtype claim; everything materialised beyond the input is capped at
twice the input's size; containers nest at most `MAX_DEPTH` levels and cannot refer back to
themselves.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import re
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

from lamina.datasets._download import check_expansion
from lamina.errors import UnsafeArchiveError
from lamina.errors import FileFormatError, UnsafePickleError

# Real files nest about 4 levels (dict > array state > list of reviews > review).
MAX_DEPTH = 32
# Bytes that `_codecs.encode` and array buffers may materialise: beyond the input itself, a
# pickle holds each array's bytes once (as text in protocol 2), so 2x covers every real file.
_MATERIALISE_FACTOR = 2
_MATERIALISE_SLACK = 1 << 16
_MAX_INT_BYTES = 64
_MAX_NPZ_MEMBERS = 10_000

_RETRY = "The file is corrupt or was tampered with; delete it so it is downloaded again."


class _Global:
    """A name the file referred to; only REDUCE (or `_reconstruct`'s first argument) may use it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_RECONSTRUCT, _NDARRAY, _DTYPE, _ENCODE, _BYTES = (
    _Global(name)
    for name in ("numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype", "_codecs.encode", "bytes")
)
_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTYPE,
    ("_codecs", "encode"): _ENCODE,
    ("builtins", "bytes"): _BYTES,
    ("__builtin__", "bytes"): _BYTES,  # protocol 2 spells empty bytes as bytes()
}


class _Shell:
    """An array or dtype between its REDUCE and its BUILD (the memo may hold it meanwhile)."""

    __slots__ = ("kind", "code_dtype", "value", "depth")

    def __init__(self, kind: str, code_dtype: np.dtype | None = None) -> None:
        self.kind, self.code_dtype, self.value, self.depth = kind, code_dtype, None, 0


# Stack tags kept beside each value: >= 0 is plain data of that nesting depth (immutable, so the
# depth is final); the negative tags name values that need a look before they may be stored.
_MUTABLE = -1  # a list or dict: its depth lives in `_Machine.depths` since it may still grow
_SPECIAL = -2  # a _Global or _Shell
_ARGS = -3  # a tuple holding a _Global: only REDUCE may consume it

_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_F64 = struct.Struct(">d").unpack_from

_INT_OPCODES = frozenset(b"KMJ")  # BININT1, BININT2, BININT
_INT_RUN = re.compile(rb"(?:K[\x00-\xff]|M[\x00-\xff]{2}|J[\x00-\xff]{4})+")
_OPCODE_NAMES = {op.code.encode("latin1")[0]: op.name for op in pickletools.opcodes}


class _Machine:
    """The pickle virtual machine, restricted to the opcodes and calls listed in the module doc."""

    def __init__(self, data: bytes, encoding: str) -> None:
        self.data = data
        self.encoding = encoding
        self.budget = _MATERIALISE_FACTOR * len(data) + _MATERIALISE_SLACK
        self.stack: list[Any] = []
        self.tags: list[int] = []
        self.marks: list[tuple[list[Any], list[int]]] = []
        self.memo: dict[int, tuple[Any, int]] = {}
        # Lists and dicts by id: their depth, whether they are stored inside something (then
        # they may no longer change, which rules out cycles), and a reference so ids stay unique.
        self.depths: dict[int, int] = {}
        self.frozen: set[int] = set()
        self.keep: list[Any] = []

    # ------------------------------------------------------------------ helpers

    def fail(self, reason: str) -> UnsafePickleError:
        return UnsafePickleError(f"Refusing to load a dataset pickle: {reason}. {_RETRY}")

    def take(self, pos: int, size: int) -> bytes:
        end = pos + size
        if size < 0 or end > len(self.data):
            raise self.fail(f"it ends in the middle of a value at byte {pos} (truncated)")
        return self.data[pos:end]

    def spend(self, size: int, what: str) -> None:
        self.budget -= size
        if self.budget < 0:
            raise self.fail(
                f"{what} would materialise more data than a {len(self.data)}-byte pickle can describe"
            )

    def push(self, value: Any, tag: int) -> None:
        self.stack.append(value)
        self.tags.append(tag)

    def pop(self) -> tuple[Any, int]:
        if not self.stack:
            raise self.fail("an opcode needs a value but the stack is empty")
        return self.stack.pop(), self.tags.pop()

    def pop_mark(self) -> tuple[list[Any], list[int]]:
        if not self.marks:
            raise self.fail("an opcode needs a MARK but there is none")
        items, tags = self.stack, self.tags
        self.stack, self.tags = self.marks.pop()
        return items, tags

    def new_mutable(self, value: Any) -> None:
        self.depths[id(value)] = 1
        self.keep.append(value)
        self.push(value, _MUTABLE)

    def settle(self, value: Any, tag: int, in_tuple: bool = False) -> tuple[Any, int]:
        """The value to store inside a container and its depth; refuses what is not data."""
        if tag >= 0:
            return value, tag
        if tag == _MUTABLE:
            self.frozen.add(id(value))
            return value, self.depths[id(value)]
        if tag == _SPECIAL and isinstance(value, _Shell):
            if value.value is None:
                raise self.fail(f"a {value.kind} is used before its state was set (no BUILD)")
            return value.value, value.depth
        if tag == _SPECIAL and in_tuple:
            return value, _ARGS
        name = value.name if isinstance(value, _Global) else "a call's arguments"
        raise self.fail(f"`{name}` may only be called, not stored as data")

    def settle_all(
        self, items: list[Any], tags: list[int], in_tuple: bool = False, target: Any = None
    ) -> tuple[list[Any], int]:
        """`items` settled, and the depth of a container holding them (or _ARGS)."""
        if not any(tags):  # only scalars (the lists of word indices): checked at C speed
            return items, 1
        if min(tags) >= 0:
            depth = max(tags) + 1
        else:
            # Only an item tagged _MUTABLE can be the target itself.
            if target is not None and any(item is target for item in items):
                raise self.fail("a container would contain itself")
            settled = [self.settle(item, tag, in_tuple) for item, tag in zip(items, tags)]
            items = [item for item, _ in settled]
            depths = [tag for _, tag in settled]
            if _ARGS in depths:
                return items, _ARGS
            depth = max(depths) + 1
        if depth > MAX_DEPTH:
            raise self.fail(f"its containers nest deeper than {MAX_DEPTH} levels")
        return items, depth

    def mutable_target(self, value: Any, tag: int, kind: type) -> None:
        if tag != _MUTABLE or type(value) is not kind:
            raise self.fail(f"it adds items to a {type(value).__name__}, not a {kind.__name__}")
        if id(value) in self.frozen:
            raise self.fail("it changes a container after storing it elsewhere (a reference cycle)")

    def grow(self, target: Any, items: list[Any], tags: list[int]) -> list[Any]:
        items, depth = self.settle_all(items, tags, target=target)
        if depth > self.depths[id(target)]:
            self.depths[id(target)] = depth
        return items

    def text(self, raw: bytes, binary_str: bool) -> Any:
        # Python 2 `str` (STRING opcodes) follows `encoding`, as pickle.Unpickler does.
        if binary_str and self.encoding == "bytes":
            return raw
        try:
            return raw.decode(self.encoding if binary_str else "utf-8", "strict")
        except (UnicodeDecodeError, LookupError) as error:
            raise self.fail(f"a string does not decode ({error})") from None

    # ------------------------------------------------------------------ calls

    def reduce(self, function: Any, function_tag: int, args: Any, args_tag: int) -> None:
        if function_tag != _SPECIAL or not isinstance(function, _Global):
            raise self.fail(f"it calls a {type(function).__name__}, which is not an allowed function")
        if type(args) is not tuple:
            raise self.fail(f"`{function.name}` gets arguments that are not a tuple")
        if function is _RECONSTRUCT:
            if len(args) != 3 or args[0] is not _NDARRAY or type(args[1]) is not tuple:
                raise self.fail("`_reconstruct` gets arguments other than (numpy.ndarray, shape, code)")
            self.push(_Shell("array"), _SPECIAL)  # the real shape comes with BUILD
        elif function is _DTYPE:
            if len(args) != 3 or type(args[0]) not in (str, bytes):
                raise self.fail("`numpy.dtype` gets arguments other than (code, align, copy)")
            self.push(_Shell("dtype", _dtype_from_code(args[0], self.fail)), _SPECIAL)
        elif function is _ENCODE:
            if len(args) != 2 or type(args[0]) is not str or args[1] not in ("latin1", "latin-1"):
                raise self.fail("`_codecs.encode` is called with something other than (text, 'latin1')")
            self.spend(len(args[0]), "`_codecs.encode`")
            try:
                self.push(args[0].encode("latin-1"), 0)
            except UnicodeEncodeError:
                raise self.fail("`_codecs.encode` gets text that is not latin1") from None
        elif function is _BYTES:
            if args:
                raise self.fail("`bytes` is called with arguments")
            self.push(b"", 0)
        else:
            raise self.fail(f"it calls `{function.name}`, which dataset files never call")

    def build(self, state: Any, state_tag: int) -> None:
        state, _ = self.settle(state, state_tag)
        shell = self.stack[-1] if self.stack else None
        if not isinstance(shell, _Shell) or self.tags[-1] != _SPECIAL or shell.value is not None:
            raise self.fail("BUILD sets the state of something that is not a new array or dtype")
        if shell.code_dtype is not None:
            shell.value = _dtype_from_state(shell.code_dtype, state, self.fail)
        else:
            shell.value = self.array_from_state(state)
            data = state[4]
            shell.depth = self.depths[id(data)] if type(data) is list else 1

    def array_from_state(self, state: Any) -> np.ndarray:
        if type(state) is not tuple or len(state) != 5 or state[0] != 1:
            raise self.fail("an array's state is not (1, shape, dtype, fortran_order, data)")
        _, shape, dtype, fortran, data = state
        if (
            type(shape) is not tuple
            or len(shape) > 32
            or any(type(size) is not int or size < 0 for size in shape)
        ):
            raise self.fail(f"an array's shape is not a tuple of sizes: {shape!r:.80}")
        if not isinstance(dtype, np.dtype) or type(fortran) not in (bool, int):
            raise self.fail("an array's state does not hold a dtype and a fortran_order flag")
        count = math.prod(shape)
        order = "F" if fortran else "C"
        if dtype.hasobject:
            if type(data) is not list or len(data) != count:
                raise self.fail(
                    f"an object array of shape {shape} claims {count} items but holds "
                    f"{len(data) if type(data) is list else type(data).__name__}"
                )
            flat = np.empty(count, dtype=object)
            for position, item in enumerate(data):  # not flat[:] = data: equal-length lists would broadcast
                flat[position] = item
            return flat.reshape(shape, order=order)
        if type(data) is str:  # Python 2 bytes read with encoding='latin1'
            self.spend(len(data), "an array's data")
            try:
                data = data.encode("latin-1")
            except UnicodeEncodeError:
                raise self.fail("an array's data is text beyond latin1") from None
        if type(data) is not bytes or len(data) != count * dtype.itemsize:
            held = len(data) if isinstance(data, (bytes, str)) else type(data).__name__
            raise self.fail(
                f"an array of shape {shape} and dtype {dtype} claims {count * dtype.itemsize} "
                f"bytes but holds {held}"
            )
        self.spend(len(data), "an array's data")
        # astype copies (the array must be writable) and, as NumPy's own unpickling does,
        # turns a foreign byte order into the native one.
        return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).astype(dtype.newbyteorder("="), order="K")

    # ------------------------------------------------------------------ the loop

    def run(self) -> Any:
        data, pos = self.data, 0
        try:
            while True:
                op = data[pos]
                if op in _INT_OPCODES:
                    # IMDB's reviews are runs of millions of BININT1/BININT2/BININT opcodes. A run
                    # that the pattern proves holds nothing else is decoded by the C unpickler
                    # as one list: nothing in it can refer to or call anything.
                    run = _INT_RUN.match(data, pos)
                    if run is None:
                        raise IndexError
                    values = pickle.loads(b"(" + run.group() + b"l.")
                    self.stack += values
                    self.tags += [0] * len(values)
                    pos = run.end()
                    continue
                pos += 1
                handler = _DISPATCH[op]
                if handler is None:
                    name = _OPCODE_NAMES.get(op)
                    if name is None:
                        raise self.fail(f"byte {pos - 1} holds {op:#04x}, which is no pickle opcode")
                    raise self.fail(f"it uses the opcode {name}, which dataset files never contain")
                pos = handler(self, pos)
                if pos < 0:
                    value, tag = self.pop()
                    return self.settle(value, tag)[0]
        except (IndexError, struct.error):
            raise self.fail(f"it ends at byte {len(data)} before its STOP opcode (truncated)") from None


def _dtype_from_code(code: Any, fail: Any) -> Any:
    """The dtype `numpy.dtype(code)` names, if it is a plain number, bool, string or object type."""
    if type(code) is bytes:
        code = code.decode("latin-1")
    if not re.fullmatch(r"[biufcOSU][0-9]{1,6}", code):
        raise fail(f"`numpy.dtype` gets the code {code!r:.40}, not a plain number, string or object type")
    try:
        dtype = np.dtype(code)
    except TypeError:
        raise fail(f"`numpy.dtype` gets the unknown code {code!r}") from None
    if dtype.itemsize == 0:
        raise fail(f"the dtype {code!r} has no size")
    return dtype


def _dtype_from_state(dtype: np.dtype, state: Any, fail: Any) -> np.dtype:
    # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]). The
    # flags tell NumPy whether items are object pointers, so they are checked, never applied.
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise fail("a dtype's state is not NumPy's (3, byteorder, ...) tuple")
    byteorder = state[1].decode("latin-1") if type(state[1]) is bytes else state[1]
    if byteorder not in ("<", ">", "|", "=") or any(part is not None for part in state[2:5] + state[8:]):
        raise fail("a dtype's state describes a structured, sub-array or annotated type")
    if state[5] not in (-1, dtype.itemsize) or type(state[7]) is not int:
        raise fail(f"a dtype's state does not match its code {dtype.str!r}")
    return dtype.newbyteorder(byteorder) if byteorder in "<>" else dtype


# ---------------------------------------------------------------------- opcode handlers
# Each takes the machine and the position after the opcode byte and returns the next position
# (-1 after STOP).


def _length_prefixed(width: int, unpack: Any) -> Any:
    def read(machine: _Machine, pos: int) -> tuple[bytes, int]:
        size = machine.data[pos] if width == 1 else unpack(machine.data, pos)[0]
        pos += width
        return machine.take(pos, size), pos + size

    return read


_read1, _read4, _read8 = _length_prefixed(1, None), _length_prefixed(4, _U32), _length_prefixed(8, _U64)


def _pushing(reader: Any, convert: Any) -> Any:
    def handler(machine: _Machine, pos: int) -> int:
        raw, pos = reader(machine, pos)
        machine.push(convert(machine, raw), 0)
        return pos

    return handler


def _proto(machine: _Machine, pos: int) -> int:
    if machine.data[pos] > 5:
        raise machine.fail(f"it is pickle protocol {machine.data[pos]}, newer than 5")
    return pos + 1


def _long(reader: Any) -> Any:
    def handler(machine: _Machine, pos: int) -> int:
        raw, pos = reader(machine, pos)
        if len(raw) > _MAX_INT_BYTES:
            raise machine.fail(f"it holds a {len(raw)}-byte integer")
        machine.push(int.from_bytes(raw, "little", signed=True), 0)
        return pos

    return handler


def _const(value: Any) -> Any:
    def handler(machine: _Machine, pos: int) -> int:
        machine.push(value, 0)
        return pos

    return handler


def _binfloat(machine: _Machine, pos: int) -> int:
    machine.push(_F64(machine.data, pos)[0], 0)
    return pos + 8


def _mark(machine: _Machine, pos: int) -> int:
    if len(machine.marks) >= MAX_DEPTH:
        raise machine.fail(f"its MARKs nest deeper than {MAX_DEPTH} levels")
    machine.marks.append((machine.stack, machine.tags))
    machine.stack, machine.tags = [], []
    return pos


def _pop(machine: _Machine, pos: int) -> int:
    if machine.stack:
        machine.pop()
    else:
        machine.pop_mark()
    return pos


def _pop_mark(machine: _Machine, pos: int) -> int:
    machine.pop_mark()
    return pos


def _dup(machine: _Machine, pos: int) -> int:
    if not machine.stack:
        raise machine.fail("DUP on an empty stack")
    machine.push(machine.stack[-1], machine.tags[-1])
    return pos


def _tuple_of(count: int | None) -> Any:
    def handler(machine: _Machine, pos: int) -> int:
        if count is None:
            items, tags = machine.pop_mark()
        else:
            if len(machine.stack) < count:
                raise machine.fail("a TUPLE opcode needs more values than the stack holds")
            cut = len(machine.stack) - count
            items, tags = machine.stack[cut:], machine.tags[cut:]
            del machine.stack[cut:], machine.tags[cut:]
        items, depth = machine.settle_all(items, tags, in_tuple=True)
        machine.push(tuple(items), 0 if not items else depth)
        return pos

    return handler


def _empty_list(machine: _Machine, pos: int) -> int:
    machine.new_mutable([])
    return pos


def _empty_dict(machine: _Machine, pos: int) -> int:
    machine.new_mutable({})
    return pos


def _list(machine: _Machine, pos: int) -> int:
    items, tags = machine.pop_mark()
    machine.new_mutable([])
    machine.stack[-1].extend(machine.grow(machine.stack[-1], items, tags))
    return pos


def _append(machine: _Machine, pos: int) -> int:
    value, tag = machine.pop()
    _extend(machine, [value], [tag])
    return pos


def _appends(machine: _Machine, pos: int) -> int:
    items, tags = machine.pop_mark()
    _extend(machine, items, tags)
    return pos


def _extend(machine: _Machine, items: list[Any], tags: list[int]) -> None:
    if not machine.stack:
        raise machine.fail("APPEND without a list")
    target = machine.stack[-1]
    machine.mutable_target(target, machine.tags[-1], list)
    target.extend(machine.grow(target, items, tags))


def _dict(machine: _Machine, pos: int) -> int:
    items, tags = machine.pop_mark()
    machine.new_mutable({})
    _set_items(machine, items, tags)
    return pos


def _setitem(machine: _Machine, pos: int) -> int:
    value, value_tag = machine.pop()
    key, key_tag = machine.pop()
    _set_items(machine, [key, value], [key_tag, value_tag])
    return pos


def _setitems(machine: _Machine, pos: int) -> int:
    items, tags = machine.pop_mark()
    _set_items(machine, items, tags)
    return pos


def _set_items(machine: _Machine, items: list[Any], tags: list[int]) -> None:
    if not machine.stack or len(items) % 2:
        raise machine.fail("SETITEMS without a dict or with a key but no value")
    target = machine.stack[-1]
    machine.mutable_target(target, machine.tags[-1], dict)
    items = machine.grow(target, items, tags)
    try:
        target.update(zip(items[::2], items[1::2]))
    except TypeError:
        raise machine.fail("a dict key is unhashable") from None


def _memo_put(reader: Any) -> Any:
    def handler(machine: _Machine, pos: int) -> int:
        index, pos = reader(machine, pos)
        if not machine.stack:
            raise machine.fail("PUT on an empty stack")
        machine.memo[index] = (machine.stack[-1], machine.tags[-1])
        return pos

    return handler


def _memo_get(reader: Any) -> Any:
    def handler(machine: _Machine, pos: int) -> int:
        index, pos = reader(machine, pos)
        if index not in machine.memo:
            raise machine.fail(f"it refers to memo entry {index}, which was never stored")
        machine.push(*machine.memo[index])
        return pos

    return handler


def _index1(machine: _Machine, pos: int) -> tuple[int, int]:
    return machine.data[pos], pos + 1


def _index4(machine: _Machine, pos: int) -> tuple[int, int]:
    return _U32(machine.data, pos)[0], pos + 4


def _memoize(machine: _Machine, pos: int) -> int:
    if not machine.stack:
        raise machine.fail("MEMOIZE on an empty stack")
    machine.memo[len(machine.memo)] = (machine.stack[-1], machine.tags[-1])
    return pos


def _frame(machine: _Machine, pos: int) -> int:
    return pos + 8  # protocol 4 framing only groups opcodes for buffering


def _resolve(machine: _Machine, module: Any, name: Any) -> None:
    if type(module) is not str or type(name) is not str:
        raise machine.fail("STACK_GLOBAL names are not strings")
    found = _GLOBALS.get((module, name))
    if found is None:
        raise machine.fail(
            f"it refers to `{module[:80]}.{name[:80]}`; dataset files may refer only to NumPy's "
            "array and dtype constructors and `_codecs.encode`"
        )
    machine.push(found, _SPECIAL)


def _global(machine: _Machine, pos: int) -> int:
    data = machine.data
    names = []
    for _ in range(2):
        end = data.find(b"\n", pos, pos + 256)
        if end < 0:
            raise machine.fail("a GLOBAL name is not a short line")
        names.append(data[pos:end].decode("utf-8", "replace"))
        pos = end + 1
    _resolve(machine, *names)
    return pos


def _stack_global(machine: _Machine, pos: int) -> int:
    name, _ = machine.pop()
    module, _ = machine.pop()
    _resolve(machine, module, name)
    return pos


def _reduce(machine: _Machine, pos: int) -> int:
    args, args_tag = machine.pop()
    function, function_tag = machine.pop()
    machine.reduce(function, function_tag, args, args_tag)
    return pos


def _build(machine: _Machine, pos: int) -> int:
    state, tag = machine.pop()
    machine.build(state, tag)
    return pos


def _stop(machine: _Machine, pos: int) -> int:
    return -1


_HANDLERS = {
    "PROTO": _proto,
    "FRAME": _frame,
    "STOP": _stop,
    "MARK": _mark,
    "POP": _pop,
    "POP_MARK": _pop_mark,
    "DUP": _dup,
    "NONE": _const(None),
    "NEWTRUE": _const(True),
    "NEWFALSE": _const(False),
    "LONG1": _long(_read1),
    "LONG4": _long(_read4),
    "BINFLOAT": _binfloat,
    "SHORT_BINSTRING": _pushing(_read1, lambda machine, raw: machine.text(raw, True)),
    "BINSTRING": _pushing(_read4, lambda machine, raw: machine.text(raw, True)),
    "SHORT_BINBYTES": _pushing(_read1, lambda machine, raw: raw),
    "BINBYTES": _pushing(_read4, lambda machine, raw: raw),
    "BINBYTES8": _pushing(_read8, lambda machine, raw: raw),
    "SHORT_BINUNICODE": _pushing(_read1, lambda machine, raw: machine.text(raw, False)),
    "BINUNICODE": _pushing(_read4, lambda machine, raw: machine.text(raw, False)),
    "BINUNICODE8": _pushing(_read8, lambda machine, raw: machine.text(raw, False)),
    "EMPTY_TUPLE": _tuple_of(0),
    "TUPLE1": _tuple_of(1),
    "TUPLE2": _tuple_of(2),
    "TUPLE3": _tuple_of(3),
    "TUPLE": _tuple_of(None),
    "EMPTY_LIST": _empty_list,
    "LIST": _list,
    "APPEND": _append,
    "APPENDS": _appends,
    "EMPTY_DICT": _empty_dict,
    "DICT": _dict,
    "SETITEM": _setitem,
    "SETITEMS": _setitems,
    "BINPUT": _memo_put(_index1),
    "LONG_BINPUT": _memo_put(_index4),
    "MEMOIZE": _memoize,
    "BINGET": _memo_get(_index1),
    "LONG_BINGET": _memo_get(_index4),
    "GLOBAL": _global,
    "STACK_GLOBAL": _stack_global,
    "REDUCE": _reduce,
    "BUILD": _build,
}


_DISPATCH = [_HANDLERS.get(_OPCODE_NAMES.get(op, "")) for op in range(256)]


def loads(data: bytes, encoding: str = "ASCII") -> Any:
    """Unpickle dataset data (see the module docstring for what is allowed).

    Args:
        data: the pickle.
        encoding: how Python 2 `str` values decode: 'bytes' keeps them as bytes (CIFAR),
            'latin1' is what NumPy uses for `.npy` object arrays.

    Raises:
        UnsafePickleError: the data refers to or builds anything else, claims more than it
            holds, nests too deep, or is truncated.
    """
    return _Machine(bytes(data), encoding).run()


def load_pickle(file: BinaryIO, encoding: str = "ASCII") -> Any:
    """`loads` of a whole binary file."""
    return loads(file.read(), encoding)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """All arrays of an `.npz` file; object arrays go through `loads`, numbers never need pickle.

    Raises:
        FileFormatError: the archive is unreadable, or its members claim more data than they
            hold or more than the archive could plausibly expand to.
        UnsafePickleError: an object array's pickle is refused (see `loads`).
    """

    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
            if len(members) > _MAX_NPZ_MEMBERS:
                raise FileFormatError(f"{path!r} holds {len(members)} arrays (at most {_MAX_NPZ_MEMBERS}). {_RETRY}")
            check_expansion(path, sum(info.file_size for info in members))
            for info in members:
                with archive.open(info) as raw:
                    arrays[info.filename[: -len(".npy")]] = _read_npy(raw, info.file_size, path, info.filename)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        if isinstance(error, (FileFormatError, UnsafePickleError, UnsafeArchiveError)):
            raise
        raise FileFormatError(f"{path!r} is not a readable .npz file ({error}). {_RETRY}") from error
    return arrays


def _read_npy(raw: BinaryIO, size: int, path: str, member: str) -> np.ndarray:
    header = io.BytesIO(raw.read(min(size, 1 << 16)))
    version = np.lib.format.read_magic(header)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(header)
    else:
        # Versions 2 and 3 differ from 1 only in the header's length field and text encoding.
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(header)
    start = header.read()
    remaining = size - len(header.getvalue())
    if dtype.hasobject:
        array = loads(start + raw.read(remaining), encoding="latin1")
        if not isinstance(array, np.ndarray) or array.shape != tuple(shape) or array.dtype != dtype:
            raise UnsafePickleError(
                f"{member!r} in {path!r} declares a {dtype} array of shape {shape} but its "
                f"pickle holds {type(array).__name__}. {_RETRY}"
            )
        return array
    claimed = math.prod(shape) * dtype.itemsize
    if len(start) + remaining != claimed or dtype.itemsize == 0:
        raise FileFormatError(
            f"{member!r} in {path!r} declares a {dtype} array of shape {shape} ({claimed} bytes) "
            f"but holds {len(start) + remaining} bytes. {_RETRY}"
        )
    # One writable buffer the array owns, filled in place: no second copy of a large array.
    buffer = bytearray(claimed)
    buffer[: len(start)] = start
    view, filled = memoryview(buffer), len(start)
    while filled < claimed:
        count = raw.readinto(view[filled:])
        if not count:
            raise FileFormatError(f"{member!r} in {path!r} ends early (truncated). {_RETRY}")
        filled += count
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
