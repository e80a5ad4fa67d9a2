"""Pixels and detection: decoding, MTCNN, the crop of each photo, worker processes.
torch, facenet-pytorch and OpenCV are imported here and nowhere else."""
