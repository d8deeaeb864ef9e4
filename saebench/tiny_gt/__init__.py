"""tiny-gt: the embedded model that does Greater-Than (corpus, training, measurement)."""
