"""Follow-up of treated liver tumours: register visits on the liver, track lesions, RECIST 1.1 / mRECIST.

Above ``report`` in the layers: it reads report.json files, labelmaps and CTs, and writes no DICOM itself.
Public API: :func:`~SmoothSegNetLib.followup.engine.run_followup`,
:func:`~SmoothSegNetLib.followup.visits.load_visit`, :func:`~SmoothSegNetLib.followup.registration.register_liver`,
:func:`~SmoothSegNetLib.followup.matching.match_lesions`, :func:`~SmoothSegNetLib.followup.response.assess`.
"""
