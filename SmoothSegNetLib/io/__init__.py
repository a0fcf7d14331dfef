"""Reading and writing CT volumes, labelmaps and segmentations (filled by the input area)."""
