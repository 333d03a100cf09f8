"""Fields of the training batches that the data layer builds and the models read."""

# Packed rows (several training windows a row, ``train_batching: packed``):
SEGMENTS = "window_segment"  # [B, L] the window (1, 2, ...) of each position, 0 for padding
SEGMENT_USERS = "window_user_id"  # [B, L] the user of each position's window


def target_list_field(config) -> str:
    """All-position training's per-position targets [B, L], e.g. ``next_item_id_list``."""
    return "next_" + config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
