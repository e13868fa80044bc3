package synth

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"strings"
)

// fillerWords are common English words that are one token in the usual
// LLM vocabularies; anonymized prompts are made of them (FillerWords).
var fillerWords = strings.Fields(`the of and to in is that for it as was with be by on not he this are or
his from at which but have an they you were her she there one all we their has been if more when will
would who so no time people other may than first water been call who oil its now find long down day did
get come made part over new sound take only little work know place year live me back give most very after
thing our just name good sentence man think say great where help through much before line right too mean
old any same tell boy follow came want show also around form three small set put end does another well
large must big even such because turn here why ask went men read need land different home us move try kind`)

// FillerWords returns words English-like words (fillerWords) drawn from a
// generator seeded by seed and a hash of role and content: the same inputs
// give the same text. A capture export anonymizes prompts with it.
func FillerWords(seed int64, role, content string, words int) string {
	h := sha256.Sum256([]byte(role + "\x00" + content))
	rng := rand.New(rand.NewPCG(uint64(seed), binary.BigEndian.Uint64(h[:8])))
	var b strings.Builder
	for j := range words {
		if j > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fillerWords[rng.IntN(len(fillerWords))])
	}
	return b.String()
}
