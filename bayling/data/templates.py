"""Instruction phrasings: several per kind, in each instruction language (keyed by FLORES code).

Slots: {src} {tgt} {l3} {lang} {name} language names (from names.py); {text} {a} {b} {c} sentences;
{terms} quoted terms; {wrong} a corrupted translation; {n} a count (2 or 3); {k} a position.
Kinds whose text the assistant says (prefaces and fixed answers) end in `_preface` or `_a`,
or are `same_yes` / `same_no`. Every language has every key (tests/test_data_templates.py).
Wording avoids inflecting language names: Russian names the language in the nominative
("язык ответа — {tgt}") or after "на" (accusative = nominative for these names).
"""

from __future__ import annotations

import random

from bayling.data.names import INSTRUCTION_LANGS

__all__ = ["PHRASES", "STYLES", "render"]

STYLES = ("formal", "casual", "child", "poetic")

EN = {
    "wrong_language": (
        "That is not in {tgt}. Please translate it into {tgt}.",
        "You answered in the wrong language: I need the {tgt} translation.",
    ),
    "translate": (
        "Translate the following {src} sentence into {tgt}:\n{text}",
        "Please translate this into {tgt}:\n\n{text}",
        "{text}\n\nTranslate the text above from {src} to {tgt}.",
        "How would you say this in {tgt}? “{text}”",
        "I need a {tgt} translation of this sentence: {text}",
        "Translate the following {src} text into {tgt}.\n\n{text}",  # bayling.infer.prompts' canonical request
    ),
    "terminology": (
        "Please make sure the translation uses {terms}.",
        "Can you revise it so that it includes {terms}?",
        "Make sure to include {terms} in your translation.",
        "The translation must contain these terms: {terms}. Please revise it.",  # as bayling.infer.prompts asks
    ),
    "constrained": (  # appended to a first translation request
        "The translation must contain these terms: {terms}.",  # as bayling.infer.prompts asks
        "Use {terms} in the translation.",
        "Make sure the translation includes {terms}.",
    ),
    "format": (
        "Please keep all numbers and names exactly as they appear in the original.",
        "Double-check that the numbers, names and formatting are preserved exactly.",
    ),
    "back_translation": (
        "Now translate your translation back into {src}.",
        "Can you back-translate that into {src} so I can check it?",
    ),
    "third_language": (
        "Now translate it into {l3}.",
        "Great. Could you also give me the {l3} version?",
    ),
    "error_feedback": (
        "I think it should be: {wrong}\nIs that right?",
        "Wouldn't this be a better translation? {wrong}",
        "My colleague translated it as follows:\n{wrong}\nIs that correct?",
    ),
    "error_preface": ("Not quite. The correct translation is:", "That version isn't accurate. It should be:"),
    "style_formal": ("Make the translation more formal.", "Could you rewrite it in a formal register?"),
    "style_casual": ("Make it sound more casual and conversational.", "Can you rephrase it in an informal, everyday tone?"),
    "style_child": ("Rewrite the translation so that a child could understand it.", "Please simplify it for a young reader."),
    "style_poetic": ("Give it a more poetic, literary style.", "Could you make the translation sound poetic?"),
    "shorter": ("Can you make the translation shorter?", "Please give me a more concise version."),
    "longer": ("Could you make it a bit longer and more explicit?", "Please expand the translation with a little more detail."),
    "polish": ("Please polish the translation so it reads more fluently.", "Can you make it sound more natural?"),
    "alternatives": ("Give me {n} alternative translations.", "Can you suggest {n} other ways to translate it?"),
    "explanation": (
        "Why did you translate it that way? Please explain your main choices.",
        "Can you explain the key word choices in your translation?",
    ),
    "error_report": (
        "I think there's a mistake in your translation. Please check it and correct it.",
        "That doesn't look quite right. Can you fix the error?",
    ),
    "answer_in": (
        "{text}\n\nWhat does this sentence say? Please answer in {tgt}.",
        "Tell me in {tgt} what the following means: {text}",
    ),
    "langid": ("Which language is this sentence written in?\n{text}", "{text}\n\nWhat language is this?"),
    "langid_a": ("This sentence is written in {name}.", "It is {name}."),
    "same_meaning": (
        "Do these two sentences mean the same thing?\n1. {a}\n2. {b}",
        "Are the following two sentences translations of each other?\nA: {a}\nB: {b}",
    ),
    "same_yes": ("Yes, they mean the same thing.", "Yes. They are translations of each other."),
    "same_no": ("No, they say different things.", "No. They are not translations of each other."),
    "pick_language": ("Which of these sentences is in {lang}?\n1. {a}\n2. {b}\n3. {c}",),
    "pick_language_a": ("Sentence {k}: {text}",),
}

ZH = {
    "wrong_language": ("这不是{tgt}。请把它翻译成{tgt}。", "语言不对，我需要的是{tgt}译文。"),
    "translate": (
        "请把下面的{src}句子翻译成{tgt}：\n{text}",
        "将这句话翻译成{tgt}：\n\n{text}",
        "{text}\n\n请将上面的内容从{src}翻译成{tgt}。",
        "这句话用{tgt}怎么说？“{text}”",
    ),
    "terminology": ("请确保译文中使用{terms}。", "能不能修改一下，让译文包含{terms}？", "翻译时请务必用上{terms}。"),
    "constrained": ("译文中必须包含这些词：{terms}。", "翻译时请使用{terms}。", "请确保译文包含{terms}。"),
    "format": ("请保证数字和名称与原文完全一致。", "请检查一下，数字、人名和格式都要和原文保持一致。"),
    "back_translation": ("现在请把你的译文再翻译回{src}。", "能把它回译成{src}吗？我想核对一下。"),
    "third_language": ("现在把它翻译成{l3}。", "很好。能再给我一个{l3}版本吗？"),
    "error_feedback": ("我觉得应该是：{wrong}\n对吗？", "这样翻译是不是更好？{wrong}", "我同事是这样翻译的：\n{wrong}\n这样对吗？"),
    "error_preface": ("不太对。正确的译文是：", "这个版本不准确，应该是："),
    "style_formal": ("请把译文改得更正式一些。", "能用更正式的语体重写一下吗？"),
    "style_casual": ("让它听起来更口语化、更随意一些。", "能换成日常聊天的语气吗？"),
    "style_child": ("请改写译文，让小孩子也能看懂。", "请把它简化一下，适合小朋友阅读。"),
    "style_poetic": ("请让译文更有诗意、更文学化。", "能把译文改得更有诗意吗？"),
    "shorter": ("能把译文缩短一点吗？", "请给一个更简洁的版本。"),
    "longer": ("能把译文写得更长、更详细一些吗？", "请把译文扩展一下，表达得更充分。"),
    "polish": ("请润色一下译文，让它读起来更通顺。", "能让译文更自然地道一些吗？"),
    "alternatives": ("请再给出{n}种不同的译法。", "能提供{n}个其他的翻译版本吗？"),
    "explanation": ("你为什么这样翻译？请解释一下主要的翻译选择。", "能解释一下译文中关键词的选择吗？"),
    "error_report": ("我觉得你的译文有个错误，请检查并改正。", "这里好像不太对，能改一下错误吗？"),
    "answer_in": ("{text}\n\n这句话是什么意思？请用{tgt}回答。", "请用{tgt}告诉我下面这句话的意思：{text}"),
    "langid": ("这句话是用什么语言写的？\n{text}", "{text}\n\n这是哪种语言？"),
    "langid_a": ("这句话是{name}。", "这是{name}。"),
    "same_meaning": ("这两句话的意思相同吗？\n1. {a}\n2. {b}", "下面两句话互为翻译吗？\nA：{a}\nB：{b}"),
    "same_yes": ("是的，这两句话意思相同。", "是的，它们互为翻译。"),
    "same_no": ("不，这两句话说的是不同的内容。", "不是，它们并不互为翻译。"),
    "pick_language": ("下面哪句话是{lang}？\n1. {a}\n2. {b}\n3. {c}",),
    "pick_language_a": ("第{k}句：{text}",),
}

DE = {
    "wrong_language": (
        "Das ist nicht auf {tgt}. Bitte übersetze es auf {tgt}.",
        "Falsche Sprache: Ich brauche die Übersetzung auf {tgt}.",
    ),
    "translate": (
        "Wie lautet der folgende Satz auf {tgt}?\n{text}",
        "Bitte übersetze diesen Satz (Ausgangssprache: {src}, Zielsprache: {tgt}):\n\n{text}",
        "{text}\n\nWie sagt man das auf {tgt}?",
        "Übersetzen Sie bitte den folgenden Text. Zielsprache: {tgt}\n{text}",
    ),
    "terminology": (
        "Bitte achte darauf, dass die Übersetzung {terms} verwendet.",
        "Kannst du die Übersetzung so ändern, dass sie {terms} enthält?",
        "Verwende in der Übersetzung unbedingt {terms}.",
    ),
    "constrained": (
        "Die Übersetzung muss diese Begriffe enthalten: {terms}.",
        "Verwende in der Übersetzung {terms}.",
    ),
    "format": (
        "Bitte übernimm alle Zahlen und Namen genau so wie im Original.",
        "Achten Sie bitte darauf, dass Zahlen, Namen und Formatierung unverändert bleiben.",
    ),
    "back_translation": (
        "Übersetze deine Übersetzung jetzt bitte zurück auf {src}.",
        "Kannst du das zur Kontrolle auf {src} zurückübersetzen?",
    ),
    "third_language": ("Und jetzt bitte auf {l3}.", "Super. Wie lautet der Satz auf {l3}?"),
    "error_feedback": (
        "Ich glaube, es müsste so heißen: {wrong}\nStimmt das?",
        "Wäre das nicht eine bessere Übersetzung? {wrong}",
        "Ein Kollege hat es so übersetzt:\n{wrong}\nIst das richtig?",
    ),
    "error_preface": ("Nicht ganz. Die richtige Übersetzung lautet:", "Diese Version ist nicht korrekt. Richtig ist:"),
    "style_formal": ("Formuliere die Übersetzung bitte förmlicher.", "Kannst du sie in einem formellen Register umschreiben?"),
    "style_casual": ("Lass es lockerer und umgangssprachlicher klingen.", "Kannst du das in einem lockeren Alltagston formulieren?"),
    "style_child": ("Schreib die Übersetzung so um, dass ein Kind sie versteht.", "Vereinfache sie bitte für junge Leser."),
    "style_poetic": ("Gib ihr einen poetischeren, literarischen Stil.", "Kannst du die Übersetzung poetisch klingen lassen?"),
    "shorter": ("Kannst du die Übersetzung kürzen?", "Bitte gib mir eine knappere Fassung."),
    "longer": ("Kannst du sie etwas ausführlicher formulieren?", "Bitte erweitere die Übersetzung um etwas mehr Detail."),
    "polish": ("Bitte glätte die Übersetzung, damit sie flüssiger klingt.", "Kannst du sie natürlicher formulieren?"),
    "alternatives": ("Gib mir {n} alternative Übersetzungen.", "Kannst du {n} weitere Übersetzungsmöglichkeiten vorschlagen?"),
    "explanation": (
        "Warum hast du es so übersetzt? Erkläre bitte deine wichtigsten Entscheidungen.",
        "Kannst du die Wortwahl in deiner Übersetzung erklären?",
    ),
    "error_report": (
        "Ich glaube, in deiner Übersetzung ist ein Fehler. Bitte prüfe und korrigiere sie.",
        "Das stimmt so nicht ganz. Kannst du den Fehler beheben?",
    ),
    "answer_in": (
        "{text}\n\nWas bedeutet dieser Satz? Bitte antworte auf {tgt}.",
        "Erkläre mir auf {tgt}, was Folgendes bedeutet: {text}",
    ),
    "langid": ("In welcher Sprache ist dieser Satz geschrieben?\n{text}", "{text}\n\nWelche Sprache ist das?"),
    "langid_a": ("Dieser Satz ist auf {name} geschrieben.", "Das ist {name}."),
    "same_meaning": (
        "Bedeuten diese beiden Sätze dasselbe?\n1. {a}\n2. {b}",
        "Sind die folgenden zwei Sätze Übersetzungen voneinander?\nA: {a}\nB: {b}",
    ),
    "same_yes": ("Ja, sie bedeuten dasselbe.", "Ja. Sie sind Übersetzungen voneinander."),
    "same_no": ("Nein, sie sagen Verschiedenes aus.", "Nein. Sie sind keine Übersetzungen voneinander."),
    "pick_language": ("Welcher dieser Sätze ist auf {lang}?\n1. {a}\n2. {b}\n3. {c}",),
    "pick_language_a": ("Satz {k}: {text}",),
}

FR = {
    "wrong_language": (
        "Ce n'est pas en {tgt}. Traduis-le en {tgt}, s'il te plaît.",
        "Mauvaise langue : j'ai besoin de la traduction en {tgt}.",
    ),
    "translate": (
        "Traduis la phrase suivante en {tgt} :\n{text}",
        "Pouvez-vous traduire ce texte en {tgt} ?\n\n{text}",
        "{text}\n\nTraduisez ce texte en {tgt} (langue source : {src}).",
        "Comment dit-on ceci en {tgt} ? « {text} »",
    ),
    "terminology": (
        "Assure-toi que la traduction utilise {terms}.",
        "Peux-tu la modifier pour qu'elle contienne {terms} ?",
        "Veillez à inclure {terms} dans votre traduction.",
    ),
    "constrained": (
        "La traduction doit contenir ces termes : {terms}.",
        "Utilise {terms} dans la traduction.",
    ),
    "format": (
        "Merci de conserver tous les chiffres et les noms exactement comme dans l'original.",
        "Vérifiez que les nombres, les noms et la mise en forme sont conservés à l'identique.",
    ),
    "back_translation": (
        "Maintenant, retraduis ta traduction en {src}.",
        "Peux-tu la retraduire en {src} pour que je vérifie ?",
    ),
    "third_language": ("Maintenant, traduis-la en {l3}.", "Parfait. Tu peux aussi me donner la version en {l3} ?"),
    "error_feedback": (
        "Je pense que ce devrait être : {wrong}\nC'est bien ça ?",
        "Cette traduction ne serait-elle pas meilleure ? {wrong}",
        "Un collègue l'a traduite ainsi :\n{wrong}\nEst-ce correct ?",
    ),
    "error_preface": ("Pas tout à fait. La traduction correcte est :", "Cette version n'est pas exacte. Il faudrait dire :"),
    "style_formal": ("Rends la traduction plus formelle.", "Pouvez-vous la réécrire dans un registre soutenu ?"),
    "style_casual": ("Donne-lui un ton plus familier et détendu.", "Tu peux la reformuler sur un ton de tous les jours ?"),
    "style_child": ("Réécris la traduction pour qu'un enfant puisse la comprendre.", "Simplifie-la pour un jeune lecteur, s'il te plaît."),
    "style_poetic": ("Donne-lui un style plus poétique et littéraire.", "Pourrais-tu rendre la traduction plus poétique ?"),
    "shorter": ("Peux-tu raccourcir la traduction ?", "Donne-moi une version plus concise, s'il te plaît."),
    "longer": ("Peux-tu la rendre un peu plus longue et plus explicite ?", "Développe un peu la traduction, s'il te plaît."),
    "polish": ("Peaufine la traduction pour qu'elle soit plus fluide.", "Peux-tu la rendre plus naturelle ?"),
    "alternatives": ("Propose-moi {n} traductions différentes.", "Pouvez-vous suggérer {n} autres façons de la traduire ?"),
    "explanation": (
        "Pourquoi l'as-tu traduite ainsi ? Explique tes principaux choix.",
        "Peux-tu expliquer le choix des mots dans ta traduction ?",
    ),
    "error_report": (
        "Je crois qu'il y a une erreur dans ta traduction. Vérifie-la et corrige-la, s'il te plaît.",
        "Ce n'est pas tout à fait juste. Peux-tu corriger l'erreur ?",
    ),
    "answer_in": (
        "{text}\n\nQue veut dire cette phrase ? Réponds en {tgt}.",
        "Explique-moi en {tgt} ce que signifie ceci : {text}",
    ),
    "langid": ("En quelle langue cette phrase est-elle écrite ?\n{text}", "{text}\n\nDe quelle langue s'agit-il ?"),
    "langid_a": ("Cette phrase est écrite en {name}.", "Cette phrase est en {name}."),
    "same_meaning": (
        "Ces deux phrases ont-elles le même sens ?\n1. {a}\n2. {b}",
        "Les deux phrases suivantes sont-elles des traductions l'une de l'autre ?\nA : {a}\nB : {b}",
    ),
    "same_yes": ("Oui, elles ont le même sens.", "Oui. Ce sont des traductions l'une de l'autre."),
    "same_no": ("Non, elles disent des choses différentes.", "Non. Ce ne sont pas des traductions l'une de l'autre."),
    "pick_language": ("Laquelle de ces phrases est en {lang} ?\n1. {a}\n2. {b}\n3. {c}",),
    "pick_language_a": ("La phrase {k} : {text}",),
}

ES = {
    "wrong_language": (
        "Eso no está en {tgt}. Tradúcelo al {tgt}, por favor.",
        "Idioma equivocado: necesito la traducción al {tgt}.",
    ),
    "translate": (
        "Traduce la siguiente oración del {src} al {tgt}:\n{text}",
        "¿Puedes traducir esto al {tgt}?\n\n{text}",
        "{text}\n\nTraduzca el texto anterior al {tgt}, por favor.",
        "¿Cómo se dice esto en {tgt}? «{text}»",
    ),
    "terminology": (
        "Asegúrate de que la traducción use {terms}.",
        "¿Puedes modificarla para que incluya {terms}?",
        "No olvides incluir {terms} en la traducción.",
    ),
    "constrained": (
        "La traducción debe contener estos términos: {terms}.",
        "Usa {terms} en la traducción.",
    ),
    "format": (
        "Por favor, conserva todos los números y nombres tal como aparecen en el original.",
        "Compruebe que los números, los nombres y el formato se mantengan exactamente igual.",
    ),
    "back_translation": (
        "Ahora traduce tu traducción de vuelta al {src}.",
        "¿Puedes retraducirla al {src} para que pueda comprobarla?",
    ),
    "third_language": ("Ahora tradúcela al {l3}.", "Perfecto. ¿Me das también la versión en {l3}?"),
    "error_feedback": (
        "Creo que debería ser: {wrong}\n¿Es correcto?",
        "¿No sería mejor esta traducción? {wrong}",
        "Un colega la tradujo así:\n{wrong}\n¿Está bien?",
    ),
    "error_preface": ("No exactamente. La traducción correcta es:", "Esa versión no es precisa. Debería ser:"),
    "style_formal": ("Haz la traducción más formal.", "¿Puede reescribirla en un registro formal?"),
    "style_casual": ("Haz que suene más informal y coloquial.", "¿Puedes reformularla con un tono cotidiano?"),
    "style_child": ("Reescribe la traducción para que un niño pueda entenderla.", "Simplifícala para un lector pequeño, por favor."),
    "style_poetic": ("Dale un estilo más poético y literario.", "¿Podrías hacer que la traducción suene poética?"),
    "shorter": ("¿Puedes acortar la traducción?", "Dame una versión más concisa, por favor."),
    "longer": ("¿Puedes hacerla un poco más larga y explícita?", "Amplía un poco la traducción, por favor."),
    "polish": ("Pule la traducción para que se lea con más fluidez.", "¿Puedes hacer que suene más natural?"),
    "alternatives": ("Dame {n} traducciones alternativas.", "¿Puedes sugerir otras {n} formas de traducirla?"),
    "explanation": (
        "¿Por qué la tradujiste así? Explica tus decisiones principales.",
        "¿Puedes explicar la elección de palabras en tu traducción?",
    ),
    "error_report": (
        "Creo que hay un error en tu traducción. Revísala y corrígela, por favor.",
        "Eso no está del todo bien. ¿Puedes corregir el error?",
    ),
    "answer_in": (
        "{text}\n\n¿Qué significa esta oración? Responde en {tgt}.",
        "Dime en {tgt} qué significa lo siguiente: {text}",
    ),
    "langid": ("¿En qué idioma está escrita esta oración?\n{text}", "{text}\n\n¿Qué idioma es este?"),
    "langid_a": ("Esta oración está escrita en {name}.", "Está en {name}."),
    "same_meaning": (
        "¿Estas dos oraciones significan lo mismo?\n1. {a}\n2. {b}",
        "¿Son las siguientes dos oraciones traducciones la una de la otra?\nA: {a}\nB: {b}",
    ),
    "same_yes": ("Sí, significan lo mismo.", "Sí. Son traducciones la una de la otra."),
    "same_no": ("No, dicen cosas distintas.", "No. No son traducciones la una de la otra."),
    "pick_language": ("¿Cuál de estas oraciones está en {lang}?\n1. {a}\n2. {b}\n3. {c}",),
    "pick_language_a": ("La oración {k}: {text}",),
}

JA = {
    "wrong_language": ("これは{tgt}ではありません。{tgt}に翻訳してください。", "言語が違います。{tgt}の訳が必要です。"),
    "translate": (
        "次の{src}の文を{tgt}に翻訳してください。\n{text}",
        "これを{tgt}に訳してもらえますか？\n\n{text}",
        "{text}\n\n上の文を{src}から{tgt}に翻訳してください。",
        "「{text}」は{tgt}で何と言いますか？",
    ),
    "terminology": (
        "訳文に{terms}を使うようにしてください。",
        "{terms}を含めるように訳し直してもらえますか？",
        "翻訳には必ず{terms}を入れてください。",
    ),
    "constrained": ("訳文には次の語を必ず含めてください：{terms}。", "翻訳では{terms}を使ってください。"),
    "format": ("数字や固有名詞は原文のとおりに残してください。", "数字・名前・書式が原文と同じになっているか確認してください。"),
    "back_translation": ("では、その訳文を{src}に訳し戻してください。", "確認したいので、{src}に逆翻訳してもらえますか？"),
    "third_language": ("次に、{l3}に翻訳してください。", "いいですね。{l3}版もお願いできますか？"),
    "error_feedback": (
        "こうだと思うのですが：{wrong}\n合っていますか？",
        "この訳のほうが良くないですか？{wrong}",
        "同僚はこう訳しました：\n{wrong}\nこれで正しいですか？",
    ),
    "error_preface": ("少し違います。正しい訳は次のとおりです：", "その訳は正確ではありません。正しくは："),
    "style_formal": ("もっと改まった表現にしてください。", "フォーマルな文体で書き直してもらえますか？"),
    "style_casual": ("もっとくだけた、会話的な感じにしてください。", "日常会話のような口調に言い換えてもらえますか？"),
    "style_child": ("子どもにもわかるように訳文を書き直してください。", "小さな読者向けにやさしくしてください。"),
    "style_poetic": ("もっと詩的で文学的な文体にしてください。", "訳文を詩のような響きにしてもらえますか？"),
    "shorter": ("訳文をもっと短くできますか？", "もっと簡潔な訳をください。"),
    "longer": ("もう少し長く、詳しく訳してもらえますか？", "訳文をもう少し膨らませてください。"),
    "polish": ("もっと自然に読めるように訳文を推敲してください。", "もっと自然な表現にできますか？"),
    "alternatives": ("別の訳し方を{n}通り挙げてください。", "ほかの訳を{n}つ提案してもらえますか？"),
    "explanation": ("なぜそのように訳したのですか？主な判断を説明してください。", "訳文の言葉の選び方を説明してもらえますか？"),
    "error_report": ("訳文に間違いがあると思います。確認して直してください。", "少しおかしいところがあります。誤りを直してもらえますか？"),
    "answer_in": ("{text}\n\nこの文はどういう意味ですか？{tgt}で答えてください。", "次の文の意味を{tgt}で教えてください：{text}"),
    "langid": ("この文は何語で書かれていますか？\n{text}", "{text}\n\nこれは何語ですか？"),
    "langid_a": ("この文は{name}で書かれています。", "{name}です。"),
    "same_meaning": ("この二つの文は同じ意味ですか？\n1. {a}\n2. {b}", "次の二つの文は互いの翻訳になっていますか？\nA：{a}\nB：{b}"),
    "same_yes": ("はい、同じ意味です。", "はい。互いの翻訳になっています。"),
    "same_no": ("いいえ、違うことを言っています。", "いいえ。互いの翻訳ではありません。"),
    "pick_language": ("次のうち、{lang}の文はどれですか？\n1. {a}\n2. {b}\n3. {c}",),
    "pick_language_a": ("{k}番目の文です：{text}",),
}

RU = {
    "wrong_language": ("Это не тот язык. Переведи, пожалуйста, на {tgt}.", "Не тот язык: нужен перевод на {tgt}."),
    "translate": (
        "Переведи следующее предложение на {tgt}:\n{text}",
        "Переведите, пожалуйста, этот текст на {tgt}.\n\n{text}",
        "{text}\n\nПереведи этот текст на {tgt} (исходный язык — {src}).",
        "Нужен перевод на {tgt}: {text}",
    ),
    "terminology": (
        "Обязательно используй в переводе {terms}.",
        "Перепиши перевод, включив в него {terms}.",
        "Пожалуйста, проследите, чтобы перевод содержал {terms}.",
    ),
    "constrained": (
        "Перевод должен содержать эти термины: {terms}.",
        "Используй в переводе {terms}.",
    ),
    "format": (
        "Пожалуйста, сохрани все числа и имена точно как в оригинале.",
        "Проверьте, что числа, имена и форматирование сохранены без изменений.",
    ),
    "back_translation": (
        "Теперь переведи свой перевод обратно на {src}.",
        "Можешь сделать обратный перевод на {src}, чтобы можно было проверить?",
    ),
    "third_language": ("Теперь переведи это на {l3}.", "Отлично. Переведи, пожалуйста, ещё и на {l3}."),
    "error_feedback": (
        "По-моему, должно быть так: {wrong}\nЭто правильно?",
        "Разве так не лучше? {wrong}",
        "Коллега перевёл это так:\n{wrong}\nЭто верно?",
    ),
    "error_preface": ("Не совсем. Правильный перевод:", "Этот вариант неточен. Правильно так:"),
    "style_formal": ("Сделай перевод более официальным.", "Можете переписать его в официальном стиле?"),
    "style_casual": ("Сделай так, чтобы звучало проще и разговорнее.", "Можешь перефразировать в непринуждённом, повседневном тоне?"),
    "style_child": ("Перепиши перевод так, чтобы его понял ребёнок.", "Упрости его, пожалуйста, для маленького читателя."),
    "style_poetic": ("Придай переводу более поэтичный, литературный стиль.", "Можешь сделать перевод поэтичнее?"),
    "shorter": ("Можешь сократить перевод?", "Дай, пожалуйста, более краткий вариант."),
    "longer": ("Можешь сделать перевод чуть длиннее и подробнее?", "Пожалуйста, немного расширь перевод."),
    "polish": ("Отшлифуй перевод, чтобы он читался более гладко.", "Можешь сделать его более естественным?"),
    "alternatives": ("Дай {n} альтернативных варианта перевода.", "Предложи ещё {n} варианта перевода."),
    "explanation": (
        "Почему перевод получился именно таким? Объясни основные решения.",
        "Можешь объяснить выбор слов в переводе?",
    ),
    "error_report": (
        "Мне кажется, в переводе есть ошибка. Проверь и исправь, пожалуйста.",
        "Здесь что-то не так. Можешь исправить ошибку?",
    ),
    "answer_in": (
        "{text}\n\nЧто означает это предложение? Язык ответа — {tgt}.",
        "Объясни, что значит следующее. Язык ответа — {tgt}.\n{text}",
    ),
    "langid": ("На каком языке написано это предложение?\n{text}", "{text}\n\nЧто это за язык?"),
    "langid_a": ("Язык этого предложения — {name}.", "Это {name}."),
    "same_meaning": (
        "Эти два предложения означают одно и то же?\n1. {a}\n2. {b}",
        "Являются ли следующие два предложения переводами друг друга?\nA: {a}\nB: {b}",
    ),
    "same_yes": ("Да, они означают одно и то же.", "Да. Это переводы друг друга."),
    "same_no": ("Нет, в них говорится о разном.", "Нет. Это не переводы друг друга."),
    "pick_language": ("Найди предложение, язык которого — {lang}:\n1. {a}\n2. {b}\n3. {c}",),
    "pick_language_a": ("Предложение {k}: {text}",),
}

PHRASES: dict[str, dict[str, tuple[str, ...]]] = dict(zip(INSTRUCTION_LANGS, (EN, ZH, DE, FR, ES, JA, RU), strict=True))

def render(kind: str, lang: str, rng: random.Random, /, **slots: str | int) -> str:
    """One phrasing of `kind` in instruction language `lang`, chosen by `rng`, slots filled."""
    return rng.choice(PHRASES[lang][kind]).format(**slots)
