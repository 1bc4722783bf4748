"""Medical segmentation networks and pipeline (filled in below)."""
