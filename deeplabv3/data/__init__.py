"""Data: reading images/labels (io), list files (lists), mask encodings and label remapping (labels), preparing
each data set kind (prepare, datasets: voc, cityscapes, ade20k, custom), the training MindRecord (mindrecord),
augmentation (transforms), the training stream (pipeline), class statistics (statistics) and synthetic sets in
the real layouts (demo for VOC, synthetic for the others)."""
