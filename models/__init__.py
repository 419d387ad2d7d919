"""scikit-learn risk models: features, training, evaluation, explanation (no streamlit)."""
