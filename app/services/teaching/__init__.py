"""Teaching: the programme, attendance, check-in, final work and logistics."""
