"""Recurrent layers: SimpleRNN, LSTM, GRU, their cells, `RNN` over any cell, StackedRNNCells, and
the sequence wrappers Bidirectional and TimeDistributed."""

from lamina.layers.recurrent.base import RNN, StackedRNNCells
from lamina.layers.recurrent.gru import GRU, GRUCell
from lamina.layers.recurrent.lstm import LSTM, LSTMCell
from lamina.layers.recurrent.simple_rnn import SimpleRNN, SimpleRNNCell
from lamina.layers.recurrent.wrappers import Bidirectional, TimeDistributed

__all__ = [
    "Bidirectional", "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "SimpleRNN", "SimpleRNNCell",
    "StackedRNNCells", "TimeDistributed",
]
