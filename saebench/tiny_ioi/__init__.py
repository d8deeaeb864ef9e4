"""tiny-ioi: the embedded model that does IOI (corpus, tokenizer, training, measurement)."""
