"""Pretexts: transforms whose state becomes part of the label."""

from ipt_compose.pretext.base import Pretext
from ipt_compose.pretext.feature import ChannelDrop, RegionDrop
from ipt_compose.pretext.input import Cutout, Rotation

__all__ = ["ChannelDrop", "Cutout", "Pretext", "RegionDrop", "Rotation"]
