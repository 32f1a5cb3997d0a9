"""`plot_model` / `model_to_dot`: the pydot graph against the model's own wiring, and against
Keras 3's `model_to_dot` for the same models (nodes compared by label, edges by the labels they
join, since node names are object ids)."""

from __future__ import annotations

import os
import re
import shutil
import sys

import pytest
import torch

import lamina
from lamina import layers
from lamina.utils import model_to_dot, plot_model

pydot = pytest.importorskip("pydot")
os.environ.setdefault("KERAS_BACKEND", "torch")
try:  # Keras 3 is the oracle of the comparisons; the other tests run without it
    import keras
except ImportError:
    keras = None
needs_keras = pytest.mark.skipif(keras is None, reason="Keras 3 is not installed")

# The same models summary's tests build in both libraries.
from tests.models.test_summary import conv, merge, mlp, nested, shared_and_long_names  # noqa: E402


def nodes_and_edges(dot) -> tuple[dict[str, tuple[str, str | None]], list]:
    """{node id: (label, cluster)} and [(source label, destination label, cluster)]."""
    nodes: dict[str, tuple[str, str | None]] = {}
    edges: list = []

    def walk(graph, cluster):
        for node in graph.get_nodes():
            if node.get_name() not in ("node", "edge", "graph"):
                nodes[node.get_name()] = (node.get("label"), cluster)
        for subgraph in graph.get_subgraphs():
            walk(subgraph, subgraph.get_name())

    def walk_edges(graph, cluster):
        for edge in graph.get_edges():
            edges.append((nodes[edge.get_source()][0], nodes[edge.get_destination()][0], cluster,
                          edge.get("penwidth")))
        for subgraph in graph.get_subgraphs():
            walk_edges(subgraph, subgraph.get_name())

    walk(dot, None)
    walk_edges(dot, None)
    return nodes, edges


def normalised(dot) -> tuple:
    nodes, edges = nodes_and_edges(dot)
    return (sorted(nodes.values(), key=str), sorted(edges, key=str), dot.get_attributes(),
            [(s.get_name(), s.get_attributes()) for s in dot.get_subgraphs()])


def name_of(label: str) -> str:
    """The layer name in a label drawn with show_layer_names."""
    return re.search(r"<b>([^<]+)</b> \(", label).group(1)


def wiring(dot) -> set[tuple[str, str]]:
    nodes, edges = nodes_and_edges(dot)
    return {(name_of(source), name_of(destination)) for source, destination, *_ in edges}


MODELS = {"mlp": mlp, "merge": merge, "nested": nested, "shared": shared_and_long_names,
          "conv": conv}
OPTIONS = [
    {},
    {"show_shapes": True, "show_dtype": True, "show_trainable": True,
     "show_layer_activations": True},
    {"expand_nested": True, "show_shapes": True, "rankdir": "LR", "dpi": 96},
    {"show_layer_names": False, "splines": "curved"},
]


@needs_keras
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("build", MODELS.values(), ids=MODELS.keys())
def test_the_graph_is_keras_graph(build, options):
    ours = normalised(model_to_dot(build(lamina), **options))
    assert ours == normalised(keras.utils.model_to_dot(build(keras), **options))
    assert ours[0]  # the comparison saw nodes


def test_edges_follow_the_models_connections():
    # Functional with branches: two inputs, two dense branches, a merge.
    assert wiring(model_to_dot(merge(lamina))) == {
        ("a", "d1"), ("b", "d2"), ("d1", "cat"), ("d2", "cat"), ("cat", "out")}
    # Sequential: a chain, no Input box.
    dot = model_to_dot(mlp(lamina))
    assert wiring(dot) == {("dense", "dropout"), ("dropout", "dense_1")}
    assert sorted(name_of(label) for label, _ in nodes_and_edges(dot)[0].values()) == [
        "dense", "dense_1", "dropout"]
    # A layer called twice is one box with an edge from each call's input.
    assert {("input_number_0", "a_shared_dense_layer_with_a_very_long_name_indeed"),
            ("input_number_1", "a_shared_dense_layer_with_a_very_long_name_indeed")} <= \
        wiring(model_to_dot(shared_and_long_names(lamina)))


def test_nested_models_are_boxes_or_clusters():
    model = nested(lamina)
    assert wiring(model_to_dot(model)) == {
        ("x", "inner"), ("inner", "branch"), ("inner", "skip"), ("branch", "add"),
        ("skip", "add")}
    expanded = model_to_dot(model, expand_nested=True)
    # The inner Sequential's last layer feeds the branch model's Input and the skip layer.
    assert wiring(expanded) == {
        ("x", "inner_dense"), ("inner_dense", "bn"), ("bn", "branch_in"), ("bn", "skip"),
        ("branch_in", "branch_dense"), ("branch_dense", "add"), ("skip", "add")}
    clusters = {s.get_name(): s for s in expanded.get_subgraphs()}
    assert set(clusters) == {"cluster_inner", "cluster_branch"}
    assert clusters["cluster_inner"].get("style") == "dashed"
    inner_names = {name_of(n.get("label")) for n in clusters["cluster_inner"].get_nodes()}
    assert inner_names == {"inner_dense", "bn"}


def test_labels_carry_shapes_dtype_activation_and_trainability():
    model = lamina.Sequential([lamina.Input((5,)), layers.Dense(3, activation="relu", name="h"),
                               layers.Dense(2, name="o")])
    model.get_layer("o").trainable = False
    nodes, _ = nodes_and_edges(model_to_dot(model, show_shapes=True, show_dtype=True,
                                            show_layer_activations=True, show_trainable=True))
    labels = {name_of(label): label for label, _ in nodes.values()}
    assert "Input shape: <b>(None, 5)</b>" in labels["h"]
    assert "Output shape: <b>(None, 3)</b>" in labels["h"]
    assert "Output dtype: <b>float32</b>" in labels["h"]
    assert "Activation: <b>relu</b>" in labels["h"] and "<b>Trainable</b>" in labels["h"]
    assert "<b>Non-trainable</b>" in labels["o"]
    plain, _ = nodes_and_edges(model_to_dot(model))
    assert not any("shape" in label for label, _ in plain.values())
    merged, _ = nodes_and_edges(model_to_dot(merge(lamina), show_shapes=True))
    labels = {name_of(label): label for label, _ in merged.values()}
    assert "Input shape: <b>[(None, 16), (None, 16)]</b>" in labels["cat"]
    assert "Input shape" not in labels["a"]  # an Input box shows its output only


def test_graph_attributes():
    dot = model_to_dot(mlp(lamina), rankdir="LR", dpi=72)
    assert dot.get("rankdir") == "LR" and dot.get("dpi") == 72 and dot.get("splines") == "ortho"


def test_a_subclassed_model_is_one_box():
    class Tiny(lamina.Model):
        def __init__(self):
            super().__init__(name="tiny")
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Tiny()
    model(torch.zeros(1, 3))
    nodes, edges = nodes_and_edges(model_to_dot(model))
    assert [name_of(label) for label, _ in nodes.values()] == ["tiny"] and not edges


# pydot's own parser (used here to read the file back) calls pyparsing's deprecated names.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:pydot")
def test_dot_source_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` to be found
    target = tmp_path / "model.dot"
    model = merge(lamina)
    assert plot_model(model, to_file=target, show_shapes=True) is None
    # plot_model draws no layer names unless asked, as in Keras.
    assert target.read_text() == model_to_dot(model, show_shapes=True,
                                              show_layer_names=False).to_string()
    (graph,) = pydot.graph_from_dot_file(str(target))
    assert len([n for n in graph.get_nodes() if n.get_name() not in ("node", "edge")]) == 6
    assert len(graph.get_edges()) == 5


def test_an_image_without_graphviz_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for extension in ("png", "svg", "pdf"):
        with pytest.raises(ImportError, match=re.escape(
                f"needs Graphviz's `dot` program to draw a '{extension}' image, and it was not "
                "found on PATH. Install Graphviz (`apt install graphviz`")) as caught:
            plot_model(mlp(lamina), to_file=tmp_path / f"model.{extension}")
        assert "to_file='model.dot'" in str(caught.value)
        assert not (tmp_path / f"model.{extension}").exists()


FAKE_DOT = """#!/bin/sh
# Stands in for Graphviz's dot: writes the format it was asked for and the source's first line.
for argument in "$@"; do
  case "$argument" in -T*) format="${argument#-T}" ;; *) source="$argument" ;; esac
done
read -r first < "$source"
printf 'drawn as %s from: %s\\n' "$format" "$first"
"""


@pytest.mark.parametrize("to_file, drawn_as", [("model.png", "png"), ("model.svg", "svg"),
                                               ("model.PDF", "pdf"), ("model", "png")])
def test_images_are_drawn_by_dot_in_the_extensions_format(tmp_path, monkeypatch, to_file,
                                                          drawn_as):
    program = tmp_path / "bin" / "dot"
    program.parent.mkdir()
    program.write_text(FAKE_DOT)
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(program.parent))
    target = tmp_path / to_file
    plot_model(merge(lamina), to_file=target)
    assert target.read_text() == f"drawn as {drawn_as} from: digraph G {{\n"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize("extension, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"),
                                              ("pdf", b"%PDF")])
def test_images_with_graphviz(tmp_path, extension, magic):
    target = tmp_path / f"model.{extension}"
    plot_model(nested(lamina), to_file=target, show_shapes=True, expand_nested=True)
    assert target.read_bytes().startswith(magic)


def test_bad_arguments_name_the_fix(tmp_path):
    model = mlp(lamina)
    with pytest.raises(ValueError, match=re.escape(
            "`rankdir` must be one of ['TB', 'LR', 'BT', 'RL'] (top to bottom, left to right, "
            "...). Received: rankdir='XY'.")):
        model_to_dot(model, rankdir="XY")
    with pytest.raises(ValueError, match=re.escape("Unrecognized keyword arguments: ['colour']")):
        plot_model(model, to_file=tmp_path / "m.dot", colour="red")
    with pytest.raises(ValueError, match=re.escape("`layer_range` is not an argument")):
        model_to_dot(model, layer_range=["dense", "dense_1"])
    with pytest.raises(ValueError, match=re.escape(
            "Model 'later' has not yet been built, so it has no layer graph to draw.")):
        model_to_dot(lamina.Sequential([layers.Dense(2)], name="later"))


def test_without_pydot_the_error_says_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(ImportError, match=re.escape(
            "plot_model and model_to_dot need pydot, which is not installed. Install it with "
            "`pip install pydot`")):
        model_to_dot(mlp(lamina))


def test_keras_code_finds_it_under_keras_utils():
    import lamina as keras_alias

    assert keras_alias.utils.plot_model is plot_model
    assert keras_alias.utils.model_to_dot is model_to_dot
