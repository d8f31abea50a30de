"""Shipped model files (installed as mixformerv2_cpu.zoo); see registry.json and MODEL_CARD.md."""
