"""Parameter counts equal the published ones at the standard configurations.

Big networks are built on torch's `meta` device: shapes without storage, so the 138M-parameter
VGG16 costs no memory and no initialization time.
"""

from __future__ import annotations

import pytest
import torch

from lamina import applications


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# (builder, kwargs, count_params() as Keras reports it, trainable parameters)
KERAS_COUNTS = [
    # The sheet's nn.Sequential: 156 + 2,416 + 48,120 + 10,164 + 850.
    ("LeNet5", {}, 61_706, 61_706),
    ("AlexNet", {}, 62_378_344, 62_378_344),
    ("VGG16", {}, 138_357_544, 138_357_544),
    ("VGG16", {"include_top": False}, 14_714_688, 14_714_688),
    ("VGG19", {}, 143_667_240, 143_667_240),
    ("ResNet50", {}, 25_636_712, 25_583_592),
    ("ResNet50", {"include_top": False}, 23_587_712, 23_534_592),
    ("ResNet101", {}, 44_707_176, 44_601_832),
    ("ResNet152", {}, 60_419_944, 60_268_520),
]

# torchvision's published counts are of parameters only (batch norm statistics are buffers).
TORCHVISION_COUNTS = [
    ("resnet18", {}, 11_689_512),
    ("resnet34", {}, 21_797_672),
    ("resnet50", {}, 25_557_032),
    ("resnet101", {}, 44_549_160),
    ("resnet152", {}, 60_192_808),
    ("VGG11", {}, 132_863_336),
    ("VGG13", {}, 133_047_848),
    ("VGG16", {"batch_norm": True}, 138_365_992),
    ("VGG19", {"batch_norm": True}, 143_678_248),
]


@pytest.mark.parametrize("name, kwargs, total, trainable", KERAS_COUNTS,
                         ids=[f"{c[0]}-{c[1]}" for c in KERAS_COUNTS])
def test_keras_counts(name, kwargs, total, trainable):
    with torch.device("meta"):
        model = applications.create_model(name, **kwargs)
    assert model.count_params() == total
    assert _trainable(model) == trainable


@pytest.mark.parametrize("name, kwargs, count", TORCHVISION_COUNTS,
                         ids=[f"{c[0]}-{c[1]}" for c in TORCHVISION_COUNTS])
def test_torchvision_counts(name, kwargs, count):
    with torch.device("meta"):
        model = applications.create_model(name, **kwargs)
    assert _trainable(model) == count


def test_counts_do_not_depend_on_the_input_size_behind_global_pooling():
    with torch.device("meta"):
        small = applications.ResNet50(input_shape=(32, 32, 3))
        default = applications.ResNet50()
        channels_first = applications.resnet18(data_format="channels_first")
    assert small.count_params() == default.count_params() == 25_636_712
    assert _trainable(channels_first) == 11_689_512


def _encoder_block(d: int, d_ff: int) -> int:
    attention = 4 * (d * d + d)           # query, key, value, output projections with biases
    feed_forward = d * d_ff + d_ff + d_ff * d + d
    return attention + feed_forward + 2 * 2 * d   # two LayerNorms


def test_bert_base_sized_encoder():
    vocab, d, heads, layers, d_ff, length, classes = 30522, 768, 12, 12, 3072, 512, 2
    with torch.device("meta"):
        sheet = applications.TransformerModel(vocab, d, heads, layers, d_ff, length, classes)
        bert = applications.TransformerModel(vocab, d, heads, layers, d_ff, length, classes,
                                             type_vocab_size=2, pooler=True)
    embeddings = vocab * d + length * d
    classifier = d * classes + classes
    expected_sheet = embeddings + layers * _encoder_block(d, d_ff) + 2 * d + classifier
    assert sheet.count_params() == expected_sheet == 108_891_650
    # BERT-base (Devlin et al., 2019): 109,482,240 parameters in the encoder ("110M").
    assert bert.count_params() - classifier == 109_482_240
    assert abs(bert.count_params() - 110e6) / 110e6 < 0.01


def test_recurrent_and_gpt_counts():
    lstm = applications.LSTMModel(8, 16, 2, 3)
    # Keras's LSTM: 4 * units * (input + units + 1) per layer.
    assert lstm.count_params() == 4 * 16 * (8 + 16 + 1) + 4 * 16 * (16 + 16 + 1) + 16 * 3 + 3
    gru = applications.GRUModel(8, 16, 1, 3)
    # Keras 3's GRU (reset_after=True): 3 * units * (input + units + 2).
    assert gru.count_params() == 3 * 16 * (8 + 16 + 2) + 16 * 3 + 3
    rnn = applications.SimpleRNNModel(8, 16, 3)
    assert rnn.count_params() == 16 * (8 + 16 + 1) + 16 * 3 + 3
    vocab, length, d, layers = 50, 12, 32, 2
    gpt = applications.GPT(vocab, length, d_model=d, num_heads=4, num_layers=layers)
    block = 4 * (d * d + d) + d * 4 * d + 4 * d + 4 * d * d + d + 2 * 2 * d
    assert gpt.count_params() == vocab * d + length * d + layers * block + 2 * d + d * vocab + vocab
