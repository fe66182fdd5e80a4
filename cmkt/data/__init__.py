"""Data sets: the in-memory type, readers for the supported formats, and splitting."""
from cmkt.data.dataset import KTDataset, train_valid_split
from cmkt.data.readers import (
    detect_format,
    load_folder,
    read_data,
    read_long,
    read_pykt,
    read_skill_names,
    read_three_line,
)

__all__ = [
    "KTDataset",
    "train_valid_split",
    "read_data",
    "load_folder",
    "read_three_line",
    "read_pykt",
    "read_long",
    "read_skill_names",
    "detect_format",
]
