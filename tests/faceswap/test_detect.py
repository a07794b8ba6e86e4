import numpy as np

from faceswap.detect import SAME_PERSON, face_distance, largest_face


def test_astronaut_has_exactly_one_face(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    left, top, right, bottom = faces[0].box
    # The face is in the upper middle of the photo, not on the suit below it.
    assert 150 < (left + right) / 2 < 300 and bottom < 250
    assert faces[0].landmarks.shape == (68, 2) and faces[0].landmarks5.shape == (5, 2)
    eyes_y = faces[0].five_points[:2, 1]
    mouth_y = faces[0].five_points[3:, 1]
    assert (eyes_y < mouth_y).all()


def test_photo_without_a_face(detector, coffee):
    assert detector.detect(coffee) == []


def test_group_photo_has_all_six_faces(detector, group_photo):
    faces = detector.detect(group_photo)
    assert len(faces) == 6
    assert largest_face(faces) is faces[0]
    assert faces[0].area >= max(face.area for face in faces)
    # Six distinct people: no two boxes overlap.
    centres = np.array([((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(6) * 1e9
    assert gaps.min() > 50


def test_portrait_and_identity_embedding(detector, embedder, portrait, astronaut):
    hanks = largest_face(detector.detect(portrait))
    eileen = largest_face(detector.detect(astronaut))
    assert hanks is not None and eileen is not None
    hanks_vec = embedder.embed(portrait, hanks)
    assert hanks_vec.shape == (128,)
    # The same face, slightly rescaled, is the same person; the astronaut is someone else.
    from PIL import Image

    bigger = np.asarray(Image.fromarray(portrait).resize((160, 160)))
    again = largest_face(detector.detect(bigger))
    assert face_distance(hanks_vec, embedder.embed(bigger, again)) < SAME_PERSON / 2
    assert face_distance(hanks_vec, embedder.embed(astronaut, eileen)) > SAME_PERSON
