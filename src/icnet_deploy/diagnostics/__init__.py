"""Why an INT8 engine disagrees: the first layer that diverges (``layerwise``) and how much each
quantization step costs (``int8_breakdown``). ``check --why`` runs them; nothing else needs them."""
