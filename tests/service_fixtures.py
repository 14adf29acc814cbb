"""Rule packs shared by the service tests (imported as ``from service_fixtures import ...``)."""

#: Two gestures for a flat tire; tests bump ``priority: 50`` to make a new ruleset version.
TIRE_PACK = """\
pack: srv
version: "1"
gestures:
  - id: tire_check
    title: Free tire check
    category: freebie
    tier: exceed
    cost: 5
    script: "We'll check your tires for free."
  - id: apology
    title: Apologise
    category: personal_touch
    tier: meet
    cost: 0
    script: "Sorry for the trouble."
rules:
  - id: flat-check
    when: interaction.issue eq flat_tire
    then: [tire_check, apology]
    priority: 50
    because: A flat is a chance to check the rest.
"""

#: A pack whose rule names a gesture that does not exist (a reload must refuse it).
BROKEN = """\
pack: broken
gestures: []
rules:
  - id: bad-rule
    when: customer.tenure_years ge 2
    then: no_such_gesture
    because: broken on purpose
"""
