"""Nested structures: Keras 3's `keras.tree` on optree.

The one walker over nested lists, tuples, namedtuples and dicts in Lamina. Leaves are everything
else: tensors, numpy arrays, numbers, strings, `None` and `torch.Size` (a shape is one value).
Dicts flatten in sorted-key order (an `OrderedDict` in its own order) and `pack_sequence_as`
restores the template's own key order, as in Keras. `flatten`, `flatten_with_spec`,
`map_structure` and `pack_sequence_as` take `insertion_ordered=True` to walk dicts in insertion
order instead: the order files of Lamina's format 1 numbered tensors in (docs/tree.md).

>>> import lamina
>>> lamina.tree.flatten({"b": [1, 2], "a": (3, None)})
[3, None, 1, 2]
>>> lamina.tree.map_structure(lambda x: x * 2, {"a": [1, 2]})
{'a': [2, 4]}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optree

__all__ = [
    "MAP_TO_NONE", "assert_same_paths", "assert_same_structure", "flatten", "flatten_with_path",
    "flatten_with_spec",
    "is_nested", "lists_to_tuples", "map_shape_structure", "map_structure", "map_structure_up_to",
    "pack_sequence_as", "register_tree_node_class", "traverse",
]

# Classes registered here are nodes for lamina.tree only, never for other optree users.
_NAMESPACE = "lamina"
# The same nodes, dicts walked in insertion order. optree's switch is process-wide per
# namespace, so it is turned on once, for a namespace of our own, and never toggled (toggling
# it around each walk would race between threads).
_INSERTION_NAMESPACE = "lamina.insertion_ordered"
_INSERTION_ORDER = optree.dict_insertion_ordered(True, namespace=_INSERTION_NAMESPACE)
_INSERTION_ORDER.__enter__()


def _namespace(insertion_ordered: bool) -> str:
    return _INSERTION_NAMESPACE if insertion_ordered else _NAMESPACE


class MAP_TO_NONE:
    """Return this from a `traverse` function to replace a sub-tree with `None`."""


def register_tree_node_class(cls: type) -> type:
    """Makes `cls` a node: it needs `tree_flatten()` and a classmethod `tree_unflatten`."""
    optree.register_pytree_node_class(cls, namespace=_INSERTION_NAMESPACE)
    return optree.register_pytree_node_class(cls, namespace=_NAMESPACE)


def _is_leaf(value: Any, none_is_leaf: bool = True) -> bool:
    return optree.tree_is_leaf(value, none_is_leaf=none_is_leaf, namespace=_NAMESPACE)


def _mismatch(a: Any, b: Any) -> ValueError:
    return ValueError(
        "The structures don't have the same nested structure: one holds a leaf where the other "
        f"holds a nested value. Received: {a!r} and {b!r}. Pass structures of the same layout, "
        "or use `map_structure_up_to` to stop at the shallower one."
    )


def is_nested(structure: Any) -> bool:
    """True for a list, tuple, namedtuple, dict or registered node; False for a leaf."""
    return not _is_leaf(structure)


def traverse(func: Callable[[Any], Any], structure: Any, top_down: bool = True) -> Any:
    """Applies `func` to every sub-tree, depth-first.

    Top-down, a non-`None` result replaces the sub-tree and stops the descent into it; bottom-up,
    it replaces the already traversed sub-tree. Return `MAP_TO_NONE` to put `None` in its place.
    """
    if not callable(func):
        raise TypeError(f"`func` must be callable. Received: func={func!r}.")

    def children_traversed(node: Any) -> Any:
        # Flattening one level: every value other than `node` itself is a leaf here.
        children, spec = optree.tree_flatten(
            node, is_leaf=lambda x: x is not node, none_is_leaf=True, namespace=_NAMESPACE
        )
        if spec.num_nodes == 1 and spec.num_leaves == 1:
            return node
        return optree.tree_unflatten(spec, [visit(child) for child in children])

    def visit(node: Any) -> Any:
        if top_down:
            result = func(node)
            if result is None:
                return children_traversed(node)
        else:
            node = children_traversed(node)
            result = func(node)
            if result is None:
                return node
        return None if result is MAP_TO_NONE else result

    return visit(structure)


def flatten(structure: Any, *, insertion_ordered: bool = False) -> list:
    """The leaves of `structure` as a list; dicts in sorted-key order (in insertion order with
    `insertion_ordered=True`); `flatten(x) == [x]` for a leaf."""
    return optree.tree_leaves(
        structure, none_is_leaf=True, namespace=_namespace(insertion_ordered)
    )


def flatten_with_spec(structure: Any, *, insertion_ordered: bool = False) -> tuple[list, Any]:
    """`flatten`'s leaves and the layout as an optree `PyTreeSpec`, whose `unflatten(leaves)`
    packs new leaves into it without walking `structure` again (Lamina's addition to Keras)."""
    return optree.tree_flatten(
        structure, none_is_leaf=True, namespace=_namespace(insertion_ordered)
    )


def flatten_with_path(structure: Any) -> list[tuple[tuple, Any]]:
    """`(path, leaf)` pairs; a path is the tuple of indices and dict keys leading to the leaf."""
    paths, leaves, _ = optree.tree_flatten_with_path(
        structure, none_is_leaf=True, namespace=_NAMESPACE
    )
    return list(zip(paths, leaves))


def map_structure(func: Callable[..., Any], *structures: Any, none_is_leaf: bool = True,
                  insertion_ordered: bool = False) -> Any:
    """Applies `func` leaf by leaf across `structures` of the same layout.

    With `none_is_leaf=False`, `None` is an empty node: `func` never sees it and it stays `None`.
    `func` is called on the leaves in `flatten`'s order (`insertion_ordered` as there).
    """
    if not structures:
        raise ValueError("`map_structure` needs at least one structure. Received none.")
    namespace = _namespace(insertion_ordered)
    if len(structures) == 1:
        return optree.tree_map(
            func, structures[0], none_is_leaf=none_is_leaf, namespace=namespace
        )

    # optree would hand a whole sub-tree of a deeper structure to `func`; Keras refuses.
    def checked(*leaves: Any) -> Any:
        for leaf in leaves[1:]:
            if not _is_leaf(leaf, none_is_leaf):
                raise _mismatch(leaves[0], leaf)
        return func(*leaves)

    return optree.tree_map(
        checked, *structures, none_is_leaf=none_is_leaf, namespace=namespace
    )


def map_structure_up_to(shallow_structure: Any, func: Callable[..., Any], *structures: Any) -> Any:
    """Like `map_structure`, but stops at the leaves of `shallow_structure`.

    Deeper parts of `structures` reach `func` whole; the result has `shallow_structure`'s layout.
    """
    if not structures:
        raise ValueError("`map_structure_up_to` needs at least one structure. Received none.")

    # optree walks the first tree's leaves, so `shallow_structure` sets the depth.
    return optree.tree_map(
        lambda _, *values: func(*values), shallow_structure, *structures, none_is_leaf=True, namespace=_NAMESPACE
    )


def assert_same_structure(a: Any, b: Any) -> None:
    """Raises `ValueError` unless `a` and `b` nest the same node types with the same arity.

    Dicts match on their keys (`dict`, `OrderedDict` and `defaultdict` alike); a list never
    matches a tuple, nor a namedtuple another namedtuple class.
    """

    def check(leaf_a: Any, leaf_b: Any) -> None:
        if not _is_leaf(leaf_a) or not _is_leaf(leaf_b):
            raise _mismatch(leaf_a, leaf_b)

    try:
        optree.tree_map(check, a, b, none_is_leaf=True, namespace=_NAMESPACE)
    except ValueError as error:
        raise ValueError(
            f"The two structures don't have the same nested structure ({error}). "
            f"Received: a={a!r}, b={b!r}."
        ) from None


def assert_same_paths(a: Any, b: Any) -> None:
    """Raises `ValueError` unless `a` and `b` have the same leaf paths (node types may differ)."""
    paths_a = set(optree.tree_paths(a, none_is_leaf=True, namespace=_NAMESPACE))
    paths_b = set(optree.tree_paths(b, none_is_leaf=True, namespace=_NAMESPACE))
    if paths_a != paths_b:
        raise ValueError(
            "`a` and `b` don't have the same paths. "
            f"Only in `a`: {sorted(paths_a - paths_b, key=repr)}; "
            f"only in `b`: {sorted(paths_b - paths_a, key=repr)}."
        )


def pack_sequence_as(structure: Any, flat_sequence: Any, *, insertion_ordered: bool = False) -> Any:
    """Puts the leaves of `flat_sequence` into the layout of `structure` (inverse of `flatten`,
    `insertion_ordered` as there)."""
    spec = optree.tree_structure(
        structure, none_is_leaf=True, namespace=_namespace(insertion_ordered)
    )
    flat_sequence = list(flat_sequence)
    if len(flat_sequence) != spec.num_leaves:
        raise ValueError(
            f"`flat_sequence` must hold one value per leaf of `structure`: expected "
            f"{spec.num_leaves}, received {len(flat_sequence)}. Received: structure={structure!r}."
        )
    return optree.tree_unflatten(spec, flat_sequence)


def lists_to_tuples(structure: Any) -> Any:
    """The same structure with every list turned into a tuple."""
    return traverse(
        lambda node: tuple(node) if isinstance(node, list) else None, structure, top_down=False
    )


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(dim, (int, type(None))) for dim in value
    )


def map_shape_structure(func: Callable[[Any], Any], structure: Any) -> Any:
    """`map_structure` in which a list or tuple of ints and `None`s is one leaf: a shape."""
    return optree.tree_map(
        func, structure, is_leaf=_is_shape, none_is_leaf=True, namespace=_NAMESPACE
    )
