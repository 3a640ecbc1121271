"""The member registry: who belongs to a community, their profile, how they join and leave.

Members come in three ways, all recorded in ``joined_via``: their first check-in
(``checkin`` — an authenticated member who checks in is registered on the spot),
an ops call (``autopilot members add`` / ``PUT /members/{id}``, ``ops``) or a
chat platform's join event (``chat``). They leave by an ops call or a leave
event: ``left_at`` is set, their balance and history stay (finance still owes
or has paid them), and they can no longer check in or redeem until they rejoin.
"""
