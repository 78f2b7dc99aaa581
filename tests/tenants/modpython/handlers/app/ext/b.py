# not python
