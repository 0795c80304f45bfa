"""Constants shared with LLaVA-NeXT (same names and values, so upstream scripts keep working)."""

IGNORE_INDEX = -100
# Placeholder id put into ``input_ids`` where an image goes; never a vocabulary id.
IMAGE_TOKEN_INDEX = -200

DEFAULT_IMAGE_TOKEN = "<image>"
DEFAULT_IMAGE_PATCH_TOKEN = "<im_patch>"
DEFAULT_IM_START_TOKEN = "<im_start>"
DEFAULT_IM_END_TOKEN = "<im_end>"

CONTROLLER_HEART_BEAT_EXPIRATION = 30
WORKER_HEART_BEAT_INTERVAL = 15
LOGDIR = "."
