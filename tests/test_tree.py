"""lamina.tree against two oracles: Keras 3's own `keras.tree` (torch backend) and optree itself."""

from __future__ import annotations

import collections
import os

import numpy as np
import optree
import pytest
import torch

from lamina import tree

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

# Field names in alphabetical order: Keras's torch backend numbers namedtuple paths by sorted
# field name (its optree backends, and lamina, by position); see test_namedtuple_paths_are_positions.
Point = collections.namedtuple("Point", ["a", "b"])
Other = collections.namedtuple("Other", ["a", "b"])
TENSOR = torch.arange(3.0)
ARRAY = np.ones((2, 2))

STRUCTURES = {
    "int": 1,
    "none": None,
    "string": "text",
    "tensor": TENSOR,
    "empty list": [],
    "empty tuple": (),
    "empty dict": {},
    "flat list": [1, 2, 3],
    "deep list": [[1, 2, 3], [4, [5], [[6]]]],
    "int keys": {100: "world!", 6: "Hello"},
    "unsorted dict": {"b": [1, (2, 3)], "a": None},
    "ordered dict": collections.OrderedDict([("b", 1), ("a", 2)]),
    "defaultdict": collections.defaultdict(list, {"z": [1], "y": [2]}),
    "namedtuple": Point(a=1, b=(2, 3)),
    "tensor leaves": [TENSOR, {"x": ARRAY, "w": None}],
    "shapes": {"b": (None, 3), "a": [(1, 2), [4], ()]},
    "empty nodes": [[], {"a": ()}, None],
}
IDS = list(STRUCTURES)


def same(a, b) -> bool:
    """Equal values in containers of the same types; tensors and arrays must be the same objects."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (torch.Tensor, np.ndarray)):
        return a is b
    return a == b


@pytest.mark.parametrize("structure", STRUCTURES.values(), ids=IDS)
def test_flatten_pack_and_paths_match_keras(structure):
    assert tree.is_nested(structure) == keras.tree.is_nested(structure)
    leaves = tree.flatten(structure)
    assert same(leaves, keras.tree.flatten(structure))
    assert same(tree.flatten_with_path(structure), keras.tree.flatten_with_path(structure))
    numbered = list(range(len(leaves)))
    assert same(
        tree.pack_sequence_as(structure, numbered),
        keras.tree.pack_sequence_as(structure, numbered),
    )
    assert same(tree.pack_sequence_as(structure, leaves), structure)


@pytest.mark.parametrize("structure", STRUCTURES.values(), ids=IDS)
def test_maps_match_keras(structure):
    def tag(*leaves):
        return ("leaf", *leaves)

    assert same(tree.map_structure(tag, structure), keras.tree.map_structure(tag, structure))
    assert same(
        tree.map_structure(tag, structure, structure),
        keras.tree.map_structure(tag, structure, structure),
    )
    assert same(
        tree.map_structure(tag, structure, none_is_leaf=False),
        keras.tree.map_structure(tag, structure, none_is_leaf=False),
    )
    assert same(tree.lists_to_tuples(structure), keras.tree.lists_to_tuples(structure))
    assert same(
        tree.map_shape_structure(tag, structure), keras.tree.map_shape_structure(tag, structure)
    )


@pytest.mark.parametrize("top_down", [True, False])
@pytest.mark.parametrize("structure", STRUCTURES.values(), ids=IDS)
def test_traverse_visits_like_keras(structure, top_down):
    ours, theirs = [], []
    assert same(
        tree.traverse(ours.append, structure, top_down=top_down),
        keras.tree.traverse(theirs.append, structure, top_down=top_down),
    )
    assert same(ours, theirs)

    # A top-down replacement stops the descent; MAP_TO_NONE puts None in place.
    def prune(node):
        if isinstance(node, tuple):
            return tree.MAP_TO_NONE
        return "one" if isinstance(node, list) and len(node) == 1 else None

    def prune_keras(node):
        result = prune(node)
        return keras.tree.MAP_TO_NONE if result is tree.MAP_TO_NONE else result

    assert same(
        tree.traverse(prune, structure, top_down=top_down),
        keras.tree.traverse(prune_keras, structure, top_down=top_down),
    )


PAIRS = [
    ([(0, 1)], [(2, 3)]),
    ([(0, 1)], [[2, 3]]),
    ([0, 1], [0, [1]]),
    ({"a": 1, "b": 2}, collections.OrderedDict([("b", 1), ("a", 2)])),
    ({"a": 1}, {"b": 1}),
    (Point(0, 1), Point(2, 3)),
    (Point(0, 1), Other(0, 1)),
    (None, 1),
    ([None], [[1]]),
    (TENSOR, [TENSOR]),
]


@pytest.mark.parametrize("a, b", PAIRS)
def test_assert_same_structure_agrees_with_keras(a, b):
    def raises(check) -> bool:
        try:
            check(a, b)
        except (ValueError, TypeError):
            return True
        return False

    expected = raises(keras.tree.assert_same_structure)
    assert raises(tree.assert_same_structure) == expected
    assert raises(keras.tree.assert_same_paths) == raises(tree.assert_same_paths)
    if expected:
        with pytest.raises(ValueError):
            tree.map_structure(lambda x, y: x, a, b)


def test_map_structure_up_to_keras_examples():
    structure = [[1, 1], [2, 2]]
    for shallow, func in [([None, None], len), ([None, [None, None]], str)]:
        assert same(
            tree.map_structure_up_to(shallow, func, structure),
            keras.tree.map_structure_up_to(shallow, func, structure),
        )
    with pytest.raises(ValueError, match="Expected an instance of list"):
        tree.map_structure_up_to([[None, None]], len, [1])


def test_agrees_with_optree_on_its_own_terms():
    structure = {"z": [1, None, (TENSOR,)], "a": Point(b=ARRAY, a={"y": 2, "x": 3})}
    leaves, spec = optree.tree_flatten(structure, none_is_leaf=True)
    assert same(tree.flatten(structure), leaves)
    assert same(tree.pack_sequence_as(structure, leaves), optree.tree_unflatten(spec, leaves))
    assert [p for p, _ in tree.flatten_with_path(structure)] == optree.tree_paths(
        structure, none_is_leaf=True
    )
    assert same(
        tree.map_structure(str, structure), optree.tree_map(str, structure, none_is_leaf=True)
    )


def test_namedtuple_paths_are_positions():
    # Keras documents namedtuple paths as indices; its torch backend numbers sorted field names.
    Pair = collections.namedtuple("Pair", ["y", "x"])
    assert tree.flatten_with_path(Pair("first", "second")) == [((0,), "first"), ((1,), "second")]


def test_pack_keeps_template_key_order():
    # Keras's docstring example: values go in sorted-key order, the dict keeps its own order.
    packed = tree.pack_sequence_as({"key3": "", "key1": "", "key2": ""}, ["v1", "v2", "v3"])
    assert list(packed.items()) == [("key3", "v3"), ("key1", "v1"), ("key2", "v2")]


def test_shapes_and_tensors_are_leaves():
    assert not tree.is_nested(torch.Size([2, 3]))
    assert not tree.is_nested(TENSOR)
    assert not tree.is_nested(ARRAY)
    assert tree.flatten([torch.Size([2, 3])]) == [torch.Size([2, 3])]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="expected 3, received 2"):
        tree.pack_sequence_as([1, [2, 3]], [1, 2])
    with pytest.raises(ValueError, match="at least one structure"):
        tree.map_structure(str)
    with pytest.raises(TypeError, match="must be callable"):
        tree.traverse(None, [1])
    with pytest.raises(ValueError, match=r"Only in `a`: \[\(1,\)\]"):
        tree.assert_same_paths([1, 2], [1])


@tree.register_tree_node_class
class Box:
    """A user's node class: optree's protocol (children, metadata) and back."""

    def __init__(self, content, label):
        self.content, self.label = content, label

    def tree_flatten(self):
        return (self.content,), self.label

    @classmethod
    def tree_unflatten(cls, label, children):
        return cls(children[0], label)


def test_registered_classes_are_nodes_for_lamina_only():
    boxed = tree.map_structure(lambda x: x * 10, [Box([1, 2], "first")])
    assert isinstance(boxed[0], Box) and boxed[0].content == [10, 20] and boxed[0].label == "first"
    assert tree.flatten(Box({"b": 1, "a": 2}, "x")) == [2, 1]
    # Registered in lamina's optree namespace: optree's default walk still sees one leaf.
    assert len(optree.tree_leaves([Box([1, 2], "x")])) == 1


def insertion_order_leaves(value):
    """Python's own dict order, walked by hand: the oracle for `insertion_ordered=True`."""
    if isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
        return [leaf for item in value for leaf in insertion_order_leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in insertion_order_leaves(item)]
    return [value]


@pytest.mark.parametrize("structure", STRUCTURES.values(), ids=IDS)
def test_insertion_ordered_walks_follow_dict_order(structure):
    leaves = tree.flatten(structure, insertion_ordered=True)
    assert same(leaves, insertion_order_leaves(structure))
    # Packing is flattening's inverse, and a map visits the leaves in the same order.
    assert same(tree.pack_sequence_as(structure, leaves, insertion_ordered=True), structure)
    visited = []
    mapped = tree.map_structure(lambda leaf: visited.append(leaf) or leaf, structure,
                                insertion_ordered=True)
    assert same(mapped, structure) and same(visited, leaves)
    # The sorted walk is untouched by the insertion-ordered one.
    assert same(tree.flatten(structure), keras.tree.flatten(structure))


def test_insertion_ordered_numbering_on_a_functional_config_shape():
    nested = {"zeta": [1, {"y": 2, "x": 3}], "alpha": (4, None)}
    assert tree.flatten(nested, insertion_ordered=True) == [1, 2, 3, 4, None]
    assert tree.flatten(nested) == [4, None, 1, 3, 2]
    packed = tree.pack_sequence_as(nested, list("abcde"), insertion_ordered=True)
    assert packed == {"zeta": ["a", {"y": "b", "x": "c"}], "alpha": ("d", "e")}
    assert list(packed) == ["zeta", "alpha"]
    mapped = tree.map_structure(lambda a, b: (a, b), nested, packed, insertion_ordered=True)
    assert mapped["zeta"][1] == {"y": (2, "b"), "x": (3, "c")}


def test_registered_classes_are_nodes_in_insertion_order_too():
    assert tree.flatten(Box({"b": 1, "a": 2}, "x"), insertion_ordered=True) == [1, 2]
    packed = tree.pack_sequence_as(Box({"b": 1, "a": 2}, "x"), [5, 6], insertion_ordered=True)
    assert isinstance(packed, Box) and packed.content == {"b": 5, "a": 6}


def test_insertion_order_holds_across_threads():
    # optree's ordering switch is process-wide: toggling it per walk would let one thread's
    # sorted walk see another's insertion-ordered one (and back).
    import threading

    structure = {"b": 1, "a": 2}
    failures = []

    def walk(insertion_ordered: bool, expected: list) -> None:
        for _ in range(2000):
            if tree.flatten(structure, insertion_ordered=insertion_ordered) != expected:
                failures.append(insertion_ordered)
                return

    threads = [threading.Thread(target=walk, args=(flag, [1, 2] if flag else [2, 1]))
               for flag in (True, False, True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


@pytest.mark.parametrize("insertion_ordered", [False, True])
@pytest.mark.parametrize("structure", STRUCTURES.values(), ids=IDS)
def test_flatten_with_spec_refills_the_layout(structure, insertion_ordered):
    leaves, spec = tree.flatten_with_spec(structure, insertion_ordered=insertion_ordered)
    assert same(leaves, tree.flatten(structure, insertion_ordered=insertion_ordered))
    numbered = list(range(len(leaves)))
    assert same(spec.unflatten(numbered), tree.pack_sequence_as(
        structure, numbered, insertion_ordered=insertion_ordered))
