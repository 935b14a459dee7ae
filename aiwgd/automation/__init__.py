"""Rules: trigger -> conditions -> loop guard -> action."""
