"""The BERT2DNN student: hashed unigram+bigram bags of query and title -> MLP -> one logit."""
