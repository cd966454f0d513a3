"""diffdyn.rnn"""
