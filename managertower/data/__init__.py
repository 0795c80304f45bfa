"""Data for the Two-Tower tasks: the ViLT/METER pyarrow layout (readers and table builders), the image transforms, the
MLM / ITM batch makers."""
