"""diffdyn.oscillators"""
