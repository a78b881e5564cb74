"""``fomm train-avd``: the second training stage of a TPSMM or MRAA model, its AVD network
(animation via disentanglement), on a model whose motion networks are trained; resumable, and
multi-process, as ``fomm train`` (:mod:`.train`). The AVD network then drives ``fomm animate
--motion avd``."""

from __future__ import annotations

import argparse

from . import train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    train.add_arguments(parser, stage="avd")


def run(args: argparse.Namespace) -> int:
    return train.train(args, "avd")
